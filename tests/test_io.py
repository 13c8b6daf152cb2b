"""Round trips of the public formats: window predictions, depth EXR, PLY and the bundle."""

import json

import numpy as np
import pytest

from engine.errors import InputError
from engine.io.bundle import Reconstruction, read_bundle, write_bundle
from engine.io.exr import read_depth_exr
from engine.io.windows import WindowPredictions, load_windows, save_windows
from engine.pipeline.windows import sliding_starts


def make_windows(n=20, l=16, stride=4, h=6, w=8, seed=0):
    rng = np.random.default_rng(seed)
    starts = sliding_starts(n, stride, l)
    g = len(starts)
    dirs = rng.normal(size=(g, l, h, w, 3)).astype(np.float32)
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    return WindowPredictions(
        num_frames=n, fps=25.0, image_size=(h, w), window_length=l,
        window_starts=starts, window_lengths=np.full(g, l),
        pointmap=rng.normal(size=(g, l, h, w, 3)).astype(np.float32),
        pointmap_conf=rng.uniform(0.5, 2, size=(g, l, h, w)).astype(np.float32),
        disparity=rng.uniform(0.1, 1, size=(g, l, h, w)).astype(np.float32),
        ray_dirs=dirs, ray_moments=rng.normal(size=(g, l, h, w, 3)).astype(np.float32),
        rgb=rng.integers(0, 255, size=(n, h, w, 3), dtype=np.uint8),
    )


def test_windows_round_trip(tmp_path):
    w = make_windows()
    save_windows(w, tmp_path / "w.npz")
    r = load_windows(tmp_path / "w.npz")
    assert r.num_windows == w.num_windows == 2
    np.testing.assert_array_equal(r.pointmap, w.pointmap)
    np.testing.assert_array_equal(r.rgb, w.rgb)
    assert r.image_size == (6, 8)


@pytest.mark.parametrize("breakage, message", [
    (lambda w: setattr(w, "pointmap", w.pointmap[..., :2]), "shape"),
    (lambda w: w.disparity.__setitem__((0, 3, 2, 2), np.nan), "NaN"),
    (lambda w: w.pointmap_conf.fill(0), "every pixel"),
    (lambda w: setattr(w, "window_starts", w.window_starts[:1]), "window_lengths"),
    (lambda w: (setattr(w, "window_starts", w.window_starts[:-1]), setattr(w, "window_lengths", w.window_lengths[:-1]),
                [setattr(w, k, getattr(w, k)[:-1]) for k in ("pointmap", "pointmap_conf", "disparity", "ray_dirs",
                                                             "ray_moments")]), "not covered"),
])
def test_windows_bad_input_is_named(tmp_path, breakage, message):
    w = make_windows()
    breakage(w)
    save_windows(w, tmp_path / "w.npz")
    with pytest.raises(InputError, match=message):
        load_windows(tmp_path / "w.npz")


def test_missing_keys_are_named(tmp_path):
    np.savez(tmp_path / "w.npz", num_frames=3)
    with pytest.raises(InputError, match="lacks the keys"):
        load_windows(tmp_path / "w.npz")


def test_bundle_round_trip_and_back_projection(tmp_path):
    n, h, w = 3, 10, 14
    K = np.array([[20.0, 0, 7], [0, 20, 5], [0, 0, 1]])
    c2w = np.stack([np.eye(4)] * n)
    c2w[:, 0, 3] = [0.0, 0.5, 1.0]
    depth = np.full((n, h, w), 4.0, np.float32)
    depth[:, 0, 0] = 0  # invalid pixel
    recon = Reconstruction(frames=np.arange(10, 10 + n), fps=24.0, K=np.stack([K] * n), camera_to_world=c2w,
                           depth=depth, confidence=np.ones((n, h, w), np.float32),
                           rgb=np.zeros((n, h, w, 3), np.uint8), source_clip="clip.mp4")
    out = write_bundle(recon, tmp_path / "bundle", windows=make_windows())
    b = read_bundle(out)
    assert [f.frame for f in b.frames] == [10, 11, 12]
    assert b.frames[2].num_points == h * w - 1
    pts = b.points(2)
    xyz = np.stack([pts["x"], pts["y"], pts["z"]], -1)
    # every point lies 4 units in front of frame 2's camera, and projects back onto a pixel centre
    cam = xyz - c2w[2, :3, 3]
    np.testing.assert_allclose(cam[:, 2], 4.0, atol=1e-5)
    uv = (cam @ K.T)[:, :2] / cam[:, 2:]
    np.testing.assert_allclose(uv % 1.0, 0.5, atol=1e-4)
    d, c = read_depth_exr(b.frames[0].depth_path)
    np.testing.assert_array_equal(d, depth[0])
    assert json.loads((out / "scene.json").read_text())["windows"] == "windows.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary folders left


def test_failed_bundle_write_leaves_old_bundle(tmp_path):
    n, h, w = 2, 4, 4
    good = Reconstruction(frames=np.arange(n), fps=24.0, K=np.stack([np.eye(3)] * n),
                          camera_to_world=np.stack([np.eye(4)] * n), depth=np.ones((n, h, w), np.float32),
                          confidence=np.ones((n, h, w), np.float32))
    write_bundle(good, tmp_path / "b")
    before = (tmp_path / "b" / "scene.json").read_text()
    bad = Reconstruction(frames=np.arange(n), fps=24.0, K=np.stack([np.eye(3)] * n),
                         camera_to_world=np.stack([np.eye(4)] * n), depth=np.ones((n, h, w), np.float32),
                         confidence=np.ones((1, h, w), np.float32))  # wrong shape: fails half-way
    with pytest.raises(IndexError):
        write_bundle(bad, tmp_path / "b")
    assert (tmp_path / "b" / "scene.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
