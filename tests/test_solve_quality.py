"""Solve quality (engine/alignment/quality.py) on simulated predictions with ground truth: zero without noise,
growing with the corruption level, flagging exactly the frames a model got wrong, kept in scene.json."""

import numpy as np
import pytest

from engine.alignment import align, quality_note
from engine.bench.align import scaled_corruption
from engine.formats.bundle import read_bundle, write_bundle
from engine.synthetic.procedural import make_scene
from engine.synthetic.simulate import misplace_frames, simulate_windows

BAD = [20, 21, 22, 23]


@pytest.fixture(scope="module")
def scene():
    return make_scene("static", 40, (64, 96))


def _quality(scene, level, amount=0.0):
    windows = simulate_windows(scene, stride=4, corruption=scaled_corruption(level), seed=0)
    recon = align(misplace_frames(windows, BAD, amount))
    return recon, recon.metadata["alignment"]["quality"]


def test_error_is_zero_without_noise_and_grows_with_the_corruption(scene):
    _, exact = _quality(scene, 0.0)
    assert max(exact["frame_error_px"]) < 1e-3 and exact["grade"] == "excellent" and exact["flagged_frames"] == []
    means = [_quality(scene, level)[1]["mean_error_px"] for level in (0.5, 1.0, 2.0)]
    assert means[0] > 0.1 and means[1] > 1.7 * means[0] and means[2] > 1.7 * means[1]


def test_misplaced_frames_are_flagged_and_no_other(scene, tmp_path):
    _, clean = _quality(scene, 1.0)
    assert clean["flagged_frames"] == [] and clean["down_weighted_frames"] == []
    recon, q = _quality(scene, 1.0, amount=0.08)
    error = np.array(q["frame_error_px"])
    assert q["flagged_frames"] == BAD and error[BAD].min() > 1.5 * np.delete(error, BAD).max()
    assert q["worst_frames"][0] in BAD
    assert "check clip frames 20-23" in quality_note(recon.metadata, recon.frames)
    # scene.json keeps it (docs/formats.md)
    assert read_bundle(write_bundle(recon, tmp_path / "b")).metadata["alignment"]["quality"] == q
