"""Known camera data (AlignOptions' focal, sensor width, principal point; docs/alignment.md): held or refined in
the solve, against ground truth; and the add-on sending the clip's Camera settings."""

import argparse

import numpy as np
import pytest

from engine.alignment import AlignOptions, align
from engine.errors import InputError
from engine.options import ReconstructOptions, add_arguments, from_args
from engine.synthetic.metrics import evaluate
from engine.synthetic.procedural import make_scene
from engine.synthetic.simulate import Corruption, simulate_windows
from tests.addon_session import SCENE, run_bpy

SIZE = (48, 80)
POSE = ("ate_percent", "rpe_trans_percent", "rpe_rot_deg", "abs_rel")


@pytest.fixture(scope="module")
def realistic():
    gt = make_scene("static", 24, SIZE)
    return gt, simulate_windows(gt, stride=4, corruption=Corruption.realistic(), seed=0)


def test_a_fixed_focal_is_kept_exactly_and_the_poses_are_no_worse(realistic):
    gt, windows = realistic
    f = float(gt.K[0, 0, 0])
    solved = evaluate(align(windows, AlignOptions()), gt)
    assert solved["focal_error"] > 1e-3  # the predictions' focal is off: there is something to fix
    for options in (AlignOptions(focal=f, focal_units="px"),
                    AlignOptions(focal=f / SIZE[1] * 23.76, sensor_width=23.76),  # mm on a 23.76 mm sensor
                    AlignOptions(focal=2 * f, focal_units="px")):  # in pixels of a plate twice the maps' size
        plate = (2 * SIZE[0], 2 * SIZE[1]) if options.focal == 2 * f else None
        recon = align(windows, options, plate_size=plate)
        np.testing.assert_allclose(recon.K[:, 0, 0], f, rtol=1e-12)
        known = evaluate(recon, gt)
        assert known["focal_error"] < 1e-12
        for key in POSE:
            assert known[key] <= solved[key] * 1.001 + 1e-9, key


def test_refine_weighs_the_known_focal_against_the_windows(realistic):
    gt, windows = realistic
    f = float(gt.K[0, 0, 0])
    solved = float(align(windows, AlignOptions()).K[0, 0, 0])
    prior = 1.1 * f  # the artist's guess, 10 % off

    def refined(tolerance):
        options = AlignOptions(focal=prior, focal_units="px", focal_mode="refine", focal_tolerance=tolerance)
        return float(align(windows, options).K[0, 0, 0])

    assert refined(1e-4) == pytest.approx(prior, rel=1e-4)  # trusted: held
    assert refined(5.0) == pytest.approx(solved, rel=1e-3)  # not trusted: the windows decide
    middle = refined(0.05)
    assert min(solved, prior) < middle < max(solved, prior)
    assert abs(middle - f) < abs(prior - f)  # the footage pulls a wrong guess towards the truth


@pytest.mark.parametrize("scene", ["static", "street"])
def test_a_known_principal_point_is_honoured(scene):
    gt = make_scene(scene, 24, SIZE)
    gt.K[:, 0, 2] += 6.0  # the lens' centre off the image's: predictions made through this camera
    gt.K[:, 1, 2] -= 3.0
    windows = simulate_windows(gt, stride=4, corruption=Corruption.none(), seed=0)
    centred = evaluate(align(windows, AlignOptions()), gt)
    recon = align(windows, AlignOptions(principal_point=(float(gt.K[0, 0, 2]), float(gt.K[0, 1, 2]))))
    np.testing.assert_allclose(recon.K, gt.K, atol=1e-6)
    known = evaluate(recon, gt)
    assert known["rpe_rot_deg"] < 1e-3 < centred["rpe_rot_deg"]
    assert known["abs_rel"] < 1e-4 < centred["abs_rel"]
    assert recon.metadata["alignment"]["quality"]["mean_error_px"] < 1e-3


def test_contradicting_or_impossible_camera_data_is_refused(realistic):
    _, windows = realistic
    with pytest.raises(InputError, match="contradict"):
        align(windows, AlignOptions(focal=35.0, per_frame_focal="on"))
    with pytest.raises(InputError, match="outside"):
        align(windows, AlignOptions(principal_point=(100.0, 10.0)))


def test_the_flags_carry_the_known_camera():
    parser = argparse.ArgumentParser()
    add_arguments(parser, ReconstructOptions)
    args = parser.parse_args(["clip.mp4", "--out", "b", "--focal", "1450.5", "--focal-units", "px",
                              "--focal-mode", "refine", "--principal-point", "960.5", "540.25",
                              "--distortion-model", "brown",
                              "--distortion", "-0.1", "0.02", "0", "0", "0.001", "-0.002"])
    reconstruct = from_args(ReconstructOptions, args)
    assert reconstruct.distortion_model == "brown" and reconstruct.distortion == (-0.1, 0.02, 0.0, 0.0, 1e-3, -0.002)
    options = reconstruct.align
    assert (options.focal, options.focal_units, options.focal_mode) == (1450.5, "px", "refine")
    assert options.principal_point == (960.5, 540.25) and options.sensor_width == 36.0


def test_the_addon_sends_the_clip_camera(addon_zip, clip, tmp_path):
    script = SCENE + """
rc = importlib.import_module(MOD + ".reconstruct")
settings = bpy.context.scene.parallax
camera = clip.tracking.camera
camera.sensor_width, camera.units, camera.focal_length = 23.76, "PIXELS", 31.5
camera.principal_point_pixels = (clip.size[0] / 2 + 20.0, clip.size[1] / 2 + 10.0)
camera.distortion_model = "BROWN"
camera.brown_k1, camera.brown_k2, camera.brown_p1, camera.brown_p2 = -0.1, 0.02, 0.004, -0.006
result["off"] = rc.reconstruct_options(bpy.context, clip)["align"]
settings.use_clip_camera, settings.focal_mode = True, "REFINE"
options = rc.reconstruct_options(bpy.context, clip)
result["on"], result["lens"] = options["align"], [options["distortion_model"], options["distortion"]]
camera.brown_k1 = camera.brown_k2 = camera.brown_p1 = camera.brown_p2 = 0.0
result["no lens"] = rc.reconstruct_options(bpy.context, clip)["distortion_model"]
result["size"] = list(clip.size)
report()
"""
    result = run_bpy(script, [addon_zip, clip], tmp_path / "profile")
    width, height = result["size"]
    assert result["off"]["focal"] is None and result["off"]["principal_point"] is None
    sent = result["on"]
    assert sent["focal"] == pytest.approx(31.5, abs=1e-5) and sent["focal_units"] == "mm"  # whatever units it shows
    assert sent["sensor_width"] == pytest.approx(23.76, abs=1e-5) and sent["focal_mode"] == "refine"
    # Blender counts y up from the bottom, the engine down from the top: 10 px above the centre.
    assert sent["principal_point"] == pytest.approx([width / 2 + 20.0, height / 2 - 10.0], abs=1e-3)
    # Brown's tangential terms in the engine's axes (y down: p1, p2 = -Blender's p2, Blender's p1; test_lens.py
    # checks this against Blender's own Movie Distortion node); a lens without distortion sends none.
    model, coefficients = result["lens"]
    assert model == "brown" and coefficients == pytest.approx([-0.1, 0.02, 0.0, 0.0, 0.006, 0.004], abs=1e-6)
    assert result["no lens"] == "none"
