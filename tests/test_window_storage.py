"""Compact bundles: window predictions stored as float16 by default (or float32, or not at all), and what
re-aligning from float16 costs against float32 on procedural scenes with realistic simulated predictions."""

import json

import numpy as np
import pytest

from engine.alignment.align import AlignOptions, align
from engine.cli import main
from engine.formats.bundle import read_bundle, write_bundle
from engine.windows.predictions import load_windows, save_windows
from engine.synthetic.procedural import make_scene
from engine.synthetic.simulate import Corruption, simulate_windows


def _windows(scene="moving_objects", frames=20, size=(48, 80)):
    return simulate_windows(make_scene(scene, frames, size, seed=1), stride=4, corruption=Corruption.realistic(),
                            seed=1)


def _folder_bytes(folder):
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix == ".npy" and p.stem != "rgb")


def test_fp16_halves_the_maps_and_rounds_them_only(tmp_path):
    windows = _windows()
    small = load_windows(save_windows(windows, tmp_path / "fp16", precision="fp16"))
    full = load_windows(save_windows(windows, tmp_path / "fp32"))  # the default: lossless
    for name in ("pointmap", "pointmap_conf", "disparity", "ray_dirs", "ray_moments"):
        assert getattr(small, name).dtype == np.float16 and getattr(full, name).dtype == np.float32
        np.testing.assert_array_equal(getattr(full, name), getattr(windows, name))
        np.testing.assert_array_equal(getattr(small, name), getattr(windows, name).astype(np.float16))
    assert _folder_bytes(tmp_path / "fp16") / _folder_bytes(tmp_path / "fp32") == pytest.approx(0.5, abs=0.001)


def test_a_map_beyond_float16_range_stays_float32(tmp_path):
    windows = _windows(frames=10)
    windows.pointmap = windows.pointmap * 1e5  # |x| > 65504 would become inf in float16
    saved = load_windows(save_windows(windows, tmp_path / "w", precision="fp16"))
    assert saved.pointmap.dtype == np.float32 and saved.disparity.dtype == np.float16
    np.testing.assert_array_equal(saved.pointmap, windows.pointmap)


def _rotation_deg(a, b):
    r = a[:3, :3].T @ b[:3, :3]
    return np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1)))


@pytest.mark.parametrize("scene", ["moving_objects", "street"])
def test_realigning_from_fp16_costs_little(tmp_path, scene):
    windows = _windows(scene, frames=24, size=(64, 112))
    ref = align(windows, AlignOptions())
    half = align(load_windows(save_windows(windows, tmp_path / "w", precision="fp16")), AlignOptions())
    path = np.linalg.norm(np.diff(ref.camera_to_world[:, :3, 3], axis=0), axis=1).sum()
    rotation = max(_rotation_deg(a, b) for a, b in zip(ref.camera_to_world, half.camera_to_world))
    centre = np.linalg.norm(ref.camera_to_world[:, :3, 3] - half.camera_to_world[:, :3, 3], axis=1).max() / path
    focal = np.abs(half.K[:, 0, 0] / ref.K[:, 0, 0] - 1).max()
    both = (ref.depth > 0) & (half.depth > 0)
    depth = np.abs(half.depth[both] / ref.depth[both] - 1)
    agree = both.sum() / max((ref.depth > 0).sum(), 1)
    print(f"{scene}: fp16 vs fp32 re-alignment: rotation {rotation:.2g} deg, centre {centre:.2g} of the path, "
          f"focal {focal:.2g}, depth median {np.median(depth):.2g} p99 {np.percentile(depth, 99):.2g}, "
          f"valid pixels kept {agree:.4f}")
    assert rotation < 0.05 and centre < 1e-3 and focal < 1e-3
    assert np.median(depth) < 1e-3 and np.percentile(depth, 99) < 1e-2 and agree > 0.99


def test_bundle_window_storage_choices(tmp_path, capsys):
    windows = _windows(frames=10)
    folder = save_windows(windows, tmp_path / "windows", precision="fp32")
    sizes = {}
    for storage in ("fp16", "fp32", "none"):
        out = tmp_path / storage
        assert main(["align", str(folder), "--out", str(out), "--keep-windows", storage]) == 0
        scene = json.loads((out / "scene.json").read_text())
        if storage == "none":
            assert scene["windows"] is None and not (out / "windows").exists()
        else:
            assert load_windows(out / "windows").pointmap.dtype == np.dtype("float" + storage[2:])
            sizes[storage] = _folder_bytes(out / "windows")
        read_bundle(out)
    assert sizes["fp16"] * 2 == pytest.approx(sizes["fp32"], rel=0.001)
    with pytest.raises(SystemExit):  # argparse refuses the choice
        main(["align", str(folder), "--out", str(tmp_path / "x"), "--keep-windows", "fp8"])
    recon = align(windows)
    with pytest.raises(Exception, match="window storage"):
        write_bundle(recon, tmp_path / "y", windows=windows, window_storage="bf16")
    assert not (tmp_path / "y").exists()
