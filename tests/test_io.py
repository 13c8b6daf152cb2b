"""Round trips of the public formats: window predictions, depth EXR, PLY and the bundle."""

import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.errors import InputError
from engine.formats.atomic import staged_file
from engine.formats.bundle import Reconstruction, read_bundle, write_bundle
from engine.formats.exr import read_depth_exr
from engine.windows.predictions import WindowPredictions, load_windows, maps_bytes, new_maps, save_windows
from engine.windows.schedule import sliding_starts


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


def test_windows_round_trip_is_memory_mapped(tmp_path):
    w = make_windows()
    save_windows(w, tmp_path / "w")
    r = load_windows(tmp_path / "w")
    assert r.num_windows == w.num_windows == 2
    assert isinstance(r.pointmap, np.memmap) and not r.pointmap.flags.writeable
    for name in ("pointmap", "pointmap_conf", "disparity", "ray_dirs", "ray_moments", "rgb"):
        np.testing.assert_array_equal(getattr(r, name), getattr(w, name))
    assert r.image_size == (6, 8) and r.fps == 25.0 and r.window_starts.tolist() == [0, 4]


def _mapped_from(folder) -> int:
    """How many of this process's memory maps come from deleted files in `folder` (Linux)."""
    return sum(f" {folder}/" in line and line.endswith("(deleted)")
               for line in Path("/proc/self/maps").read_text().splitlines())


def test_spilled_maps_live_in_nameless_files_and_save_like_arrays(tmp_path):
    """A model fills `new_maps(..., spill_dir)` window by window: disk-backed, invisible in the folder
    (so a killed engine leaves nothing behind), and gone when freed."""
    w = make_windows()
    (tmp_path / "spill").mkdir()
    maps = new_maps(w.num_windows, w.window_length, w.image_size, tmp_path / "spill")
    assert all(isinstance(m, np.memmap) for m in maps.values())
    assert _mapped_from(tmp_path / "spill") == 5 and not any((tmp_path / "spill").iterdir())
    for name, m in maps.items():
        m[:] = getattr(w, name)
    save_windows(WindowPredictions(**{**vars(w), **maps}), tmp_path / "w")
    r = load_windows(tmp_path / "w")
    np.testing.assert_array_equal(r.pointmap, w.pointmap)
    np.testing.assert_array_equal(r.ray_moments, w.ray_moments)
    del maps, m
    assert _mapped_from(tmp_path / "spill") == 0


def test_maps_bytes_is_what_new_maps_allocates():
    assert maps_bytes(3, 16, (5, 7)) == sum(m.nbytes for m in new_maps(3, 16, (5, 7)).values()) == 3 * 16 * 35 * 44


def test_saving_a_folder_onto_itself_keeps_it(tmp_path):
    w = make_windows()
    save_windows(w, tmp_path / "w")
    save_windows(load_windows(tmp_path / "w"), tmp_path / "w")
    r = load_windows(tmp_path / "w")
    np.testing.assert_array_equal(r.pointmap, w.pointmap)
    np.testing.assert_array_equal(r.rgb, w.rgb)


def test_version_1_npz_is_still_read(tmp_path):
    w = make_windows()
    np.savez(tmp_path / "w.npz", format="parallax.window_predictions", format_version=1, num_frames=w.num_frames,
             fps=w.fps, image_size=w.image_size, window_length=w.window_length, window_starts=w.window_starts,
             pointmap=w.pointmap, pointmap_conf=w.pointmap_conf, disparity=w.disparity, ray_dirs=w.ray_dirs,
             ray_moments=w.ray_moments)  # no window_lengths: they default to min(L, N - start)
    r = load_windows(tmp_path / "w.npz")
    assert r.window_lengths.tolist() == [16, 16] and r.rgb is None
    np.testing.assert_array_equal(r.disparity, w.disparity)


@pytest.mark.parametrize("breakage, message", [
    (lambda w: setattr(w, "pointmap", w.pointmap[..., :2]), "shape"),
    (lambda w: w.disparity.__setitem__((0, 3, 2, 2), np.nan), "NaN"),
    (lambda w: w.pointmap_conf.__setitem__((1, 0, 0, 0), -1.0), "negative"),
    (lambda w: w.pointmap_conf.fill(0), "every pixel"),
    (lambda w: setattr(w, "window_starts", w.window_starts[:1]), "window_lengths"),
    (lambda w: (setattr(w, "window_starts", w.window_starts[:-1]), setattr(w, "window_lengths", w.window_lengths[:-1]),
                [setattr(w, k, getattr(w, k)[:-1]) for k in ("pointmap", "pointmap_conf", "disparity", "ray_dirs",
                                                             "ray_moments")]), "not covered"),
])
def test_windows_bad_input_is_named(tmp_path, breakage, message):
    w = make_windows()
    breakage(w)
    save_windows(w, tmp_path / "w")
    with pytest.raises(InputError, match=message):
        load_windows(tmp_path / "w")


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "windows.json").unlink(), "has no windows.json"),
    (lambda d: (d / "disparity.npy").unlink(), "lacks disparity.npy"),
    (lambda d: (d / "ray_dirs.npy").write_bytes(b"\x93NUMPY garbage"), "not a readable .npy"),
    (lambda d: (d / "windows.json").write_text("{"), "not valid JSON"),
    (lambda d: (d / "windows.json").write_text('{"format_version": 9}'), "newer than this Parallax"),
])
def test_damaged_folder_is_named(tmp_path, damage, message):
    save_windows(make_windows(), tmp_path / "w")
    damage(tmp_path / "w")
    with pytest.raises(InputError, match=message):
        load_windows(tmp_path / "w")


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
    assert json.loads((out / "scene.json").read_text())["windows"] == "windows"
    # A bundle keeps its window predictions as float16 by default (tests/test_window_storage.py).
    np.testing.assert_array_equal(load_windows(out / "windows").pointmap, make_windows().pointmap.astype(np.float16))
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


@pytest.fixture
def group_umask():
    """The umask of a studio that shares work with its group (rwxr-x---); restored afterwards."""
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_bundles_are_readable_by_the_group(tmp_path, group_umask):
    n, h, w = 2, 4, 4
    recon = Reconstruction(frames=np.arange(n), fps=24.0, K=np.stack([np.eye(3)] * n),
                           camera_to_world=np.stack([np.eye(4)] * n), depth=np.ones((n, h, w), np.float32),
                           confidence=np.ones((n, h, w), np.float32))
    out = write_bundle(recon, tmp_path / "bundle", windows=make_windows())
    modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    assert modes["."] == 0o750 and modes["scene.json"] == 0o640 and modes["windows"] == 0o750
    assert {mode for path, mode in modes.items()} == {0o750, 0o640}, modes
    with staged_file(tmp_path / "notes.txt") as f:
        f.write(b"shared")
    assert stat.S_IMODE((tmp_path / "notes.txt").stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "notes.txt"]


def test_only_exr_files_need_openexr():
    """The GPU benchmark machine and Blender's Python have no OpenEXR: reading clips, the benchmarks and the
    server must import without it (an EXR plate or a depth-map writer then loads it)."""
    modules = ["engine.clips.video", "engine.formats.bundle", "engine.protocol.server"]
    if importlib.util.find_spec("torch"):  # the benchmarks need torch (the Python 3.13 lane has none)
        modules += ["engine.bench.model", "engine.bench.memory"]
    code = f"import sys; sys.modules['OpenEXR'] = None\nimport {', '.join(modules)}"
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def _pointmap_only(w):
    """`w` as a model without rays gives it: camera-frame point maps and validity, no disparity or rays."""
    return WindowPredictions(num_frames=w.num_frames, fps=w.fps, image_size=w.image_size,
                             window_length=w.window_length, window_starts=w.window_starts,
                             window_lengths=w.window_lengths, pointmap=w.pointmap,
                             pointmap_conf=(w.pointmap_conf > 1).astype(np.float32), rgb=w.rgb,
                             pointmap_frame="camera")


def test_point_maps_alone_round_trip_with_their_modalities_and_frame(tmp_path):
    w = _pointmap_only(make_windows())
    save_windows(w, tmp_path / "w")
    meta = json.loads((tmp_path / "w" / "windows.json").read_text())
    assert meta["modalities"] == ["pointmap"] and meta["pointmap_frame"] == "camera" and meta["format_version"] == 3
    assert sorted(p.name for p in (tmp_path / "w").glob("*.npy")) == ["pointmap.npy", "pointmap_conf.npy", "rgb.npy"]
    r = load_windows(tmp_path / "w")
    assert r.modalities == ("pointmap",) and r.pointmap_frame == "camera"
    assert r.disparity is None and r.ray_dirs is None and r.ray_moments is None
    np.testing.assert_array_equal(r.pointmap, w.pointmap)
    np.testing.assert_array_equal(r.pointmap_conf, w.pointmap_conf)
    assert maps_bytes(3, 16, (5, 7), ["pointmap"]) == sum(
        m.nbytes for m in new_maps(3, 16, (5, 7), modalities=["pointmap"]).values()) == 3 * 16 * 35 * 16


def test_folders_before_version_3_have_every_modality_in_the_window_frame(tmp_path):
    save_windows(make_windows(), tmp_path / "w")
    meta = json.loads((tmp_path / "w" / "windows.json").read_text())
    assert meta["modalities"] == ["pointmap", "disparity", "rays"] and meta["pointmap_frame"] == "window"
    for key in ("modalities", "pointmap_frame"):
        del meta[key]
    meta["format_version"] = 2
    (tmp_path / "w" / "windows.json").write_text(json.dumps(meta))
    r = load_windows(tmp_path / "w")
    assert r.modalities == ("pointmap", "disparity", "rays") and r.pointmap_frame == "window"


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(modalities=["pointmap", "normals"]), "modalities"),
    (lambda m: m.update(modalities=["disparity"]), "pointmap\" is required"),
    (lambda m: m.update(modalities="pointmap"), "must be a list"),
    (lambda m: m.update(pointmap_frame="world"), "pointmap_frame"),
    (lambda m: m.update(rgb=None), "without `rgb`"),
])
def test_bad_modalities_and_frames_are_named(tmp_path, edit, message):
    save_windows(_pointmap_only(make_windows()), tmp_path / "w")
    meta = json.loads((tmp_path / "w" / "windows.json").read_text())
    edit(meta)
    (tmp_path / "w" / "windows.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=message):
        load_windows(tmp_path / "w")


def test_rays_come_in_pairs():
    w = make_windows()
    w.ray_moments = None
    with pytest.raises(InputError, match="come together"):
        w.validate()
