"""`python -m engine align` end to end through a subprocess: a good file, and each kind of bad file."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.io.bundle import read_bundle
from engine.io.exr import read_depth_exr
from engine.io.windows import save_windows
from engine.synthetic.procedural import make_scene
from engine.synthetic.simulate import simulate_windows

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scene_and_file(tmp_path_factory):
    gt = make_scene("static", 20, (24, 40))
    windows = simulate_windows(gt, stride=4)
    path = tmp_path_factory.mktemp("windows") / "windows.npz"
    save_windows(windows, path)
    return gt, path


def _align(*args):
    return subprocess.run([sys.executable, "-m", "engine", "align", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_align_writes_a_bundle_matching_the_ground_truth(scene_and_file, tmp_path):
    gt, path = scene_and_file
    result = _align(path, "--out", tmp_path / "bundle", "--point-stride", "1")
    assert result.returncode == 0, result.stderr
    assert "aligned 20 frames from 2 windows" in result.stdout
    bundle = read_bundle(tmp_path / "bundle")
    assert [f.frame for f in bundle.frames] == list(range(20))
    np.testing.assert_allclose(bundle.frames[5].K, gt.K[5], rtol=1e-4)
    # Relative pose of frames 0 -> 19 matches the truth up to the one unknown scale.
    rel_true = np.linalg.inv(gt.camera_to_world[0]) @ gt.camera_to_world[19]
    rel = bundle.frames[19].camera_to_world
    np.testing.assert_allclose(rel[:3, :3], rel_true[:3, :3], atol=1e-5)
    scale = np.linalg.norm(rel_true[:3, 3]) / np.linalg.norm(rel[:3, 3])
    np.testing.assert_allclose(scale * rel[:3, 3], rel_true[:3, 3], atol=1e-4)
    depth, conf = read_depth_exr(bundle.frames[7].depth_path)
    np.testing.assert_allclose(scale * depth, gt.depth[7], rtol=1e-4)
    assert (conf > 0).all()
    assert (tmp_path / "bundle" / "windows.npz").is_file()
    assert json.loads((tmp_path / "bundle" / "scene.json").read_text())["metadata"]["alignment"]["options"]


def _broken(path: Path, tmp_path: Path, change) -> Path:
    data = dict(np.load(path))
    change(data)
    out = tmp_path / "broken.npz"
    np.savez(out, **data)
    return out


def _drop_last_window(d):
    for key in ("window_starts", "window_lengths", "pointmap", "pointmap_conf", "disparity", "ray_dirs",
                "ray_moments"):
        d[key] = d[key][:1]


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("ray_moments"), "lacks the keys ['ray_moments']"),
    (lambda d: d.update(disparity=d["disparity"][:, :, :-1]), "`disparity` has shape"),
    (lambda d: d["pointmap"].__setitem__((1, 2, 3, 4, 0), np.inf), "NaN or inf"),
    (lambda d: d["pointmap_conf"].fill(0.0), "pointmap_conf = 0"),
    (_drop_last_window, "frames 16-19 are not covered"),
])
def test_bad_input_fails_clearly_and_leaves_no_bundle(scene_and_file, tmp_path, change, message):
    _, path = scene_and_file
    bad = _broken(path, tmp_path, change)
    result = _align(bad, "--out", tmp_path / "bundle")
    assert result.returncode != 0
    assert message in result.stderr
    assert "fix:" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "bundle").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["broken.npz"]  # no temporary folder left either


def test_missing_file_is_named(tmp_path):
    result = _align(tmp_path / "nope.npz", "--out", tmp_path / "bundle")
    assert result.returncode != 0 and "does not exist" in result.stderr
    assert not (tmp_path / "bundle").exists()
