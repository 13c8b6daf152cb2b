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
    assert "check frames 21-24 of the clip" in quality_note(recon.metadata, recon.frames, None)
    # scene.json keeps it (docs/formats.md)
    assert read_bundle(write_bundle(recon, tmp_path / "b")).metadata["alignment"]["quality"] == q


def test_the_note_counts_plate_pixels_and_the_clips_frames_from_1(scene):
    """What the artist reads beside Blender's own solve error: plate pixels, frames as Blender plays the clip."""
    recon, q = _quality(scene, 1.0, amount=0.08)
    frames = recon.frames + 100  # a range from clip index 100: index 120 is the clip's frame 121
    worst = q["worst_frames"][0]
    scale = 1920 / q["width"]  # maps 96 px wide from a 1920 px plate: 20 plate pixels per map pixel
    note = quality_note(recon.metadata, frames, 1920)
    assert note == (f"solve error {q['mean_error_px'] * scale:.2f} px average in plate pixels ({q['grade']}), worst "
                    f"{q['frame_error_px'][worst] * scale:.2f} px at frame {worst + 101} of the clip (counting from "
                    "1); check frames 121-124 of the clip")
    assert q["mean_error_px"] * scale > 10 * q["mean_error_px"]  # so the maps' figure could not pass for it
    unknown = quality_note(recon.metadata, frames, None)  # window predictions alone: the maps' pixels, said so
    assert unknown.startswith(f"solve error {q['mean_error_px']:.2f} px average in pixels of the 96 px wide depth "
                              "maps (the plate's size is unknown)")
