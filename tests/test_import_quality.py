"""The solve quality of a bundle in Blender (bpy 5.0.1): the camera's animated `parallax_solve_error` in plate
pixels, the panel's summary in scene frames, the operator that jumps to a worst frame, and the same figures and
frames as the engine's log line."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.importer import ImportOptions, import_bundle  # noqa: E402
from blender_addon.importer.quality import PROPERTY, SUMMARY, PARALLAX_OT_go_to_frame  # noqa: E402
from engine.alignment import align, quality_note  # noqa: E402
from engine.bench.align import scaled_corruption  # noqa: E402
from engine.formats.bundle import write_bundle  # noqa: E402
from engine.synthetic.procedural import make_scene  # noqa: E402
from engine.synthetic.simulate import misplace_frames, simulate_windows  # noqa: E402

BAD = [20, 21, 22, 23]


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """A bundle aligned from simulated predictions with frames 20-23 misplaced (they are flagged)."""
    windows = simulate_windows(make_scene("static", 40, (64, 96)), stride=4, corruption=scaled_corruption(1.0))
    recon = align(misplace_frames(windows, BAD, 0.08))
    return write_bundle(recon, tmp_path_factory.mktemp("q") / "bundle"), recon.metadata["alignment"]["quality"]


def test_solve_error_is_keyed_on_the_camera_and_summarised(solved, tmp_path):
    path, quality = solved
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 250
    import_bundle(bpy.context, path, ImportOptions(points=False, depth=False))
    camera = scene.camera
    scale = scene.render.resolution_x / quality["width"]  # no clip: the render is the maps' size
    shown = []
    for i in range(40):
        scene.frame_set(i + 1)
        shown.append(camera[PROPERTY])
    np.testing.assert_allclose(shown, np.array(quality["frame_error_px"]) * scale, rtol=1e-5)
    summary = camera[SUMMARY]
    assert summary["grade"] == quality["grade"] and list(summary["flagged"]) == [f + 1 for f in BAD]
    assert summary["worst"][0] in [f + 1 for f in BAD]
    assert summary["mean_px"] == pytest.approx(quality["mean_error_px"] * scale, rel=1e-3)

    bpy.utils.register_class(PARALLAX_OT_go_to_frame)
    try:
        assert bpy.ops.parallax.go_to_frame(frame=summary["worst"][0]) == {"FINISHED"}
        assert scene.frame_current == summary["worst"][0]
    finally:
        bpy.utils.unregister_class(PARALLAX_OT_go_to_frame)

    # A re-import of a bundle without a quality (an older one) leaves no stale figure on the camera.
    older = Path(shutil.copytree(path, tmp_path / "older"))
    scene_json = json.loads((older / "scene.json").read_text())
    del scene_json["metadata"]["alignment"]["quality"]
    (older / "scene.json").write_text(json.dumps(scene_json))
    import_bundle(bpy.context, older, ImportOptions(points=False, depth=False))
    assert scene.camera == camera and PROPERTY not in camera and SUMMARY not in camera


def test_the_panel_shows_the_engines_figure_in_plate_pixels_at_the_clips_frames(solved, tmp_path):
    """A plate twice the maps' width at Start Frame 1001: the camera's property and the panel's average are in
    plate pixels, the same average the engine's log line gives with the plate's width, and the worst frame the
    line names (the clip's frames counted from 1) is the panel's button at the clip's Start Frame."""
    path, quality = solved
    plate = tmp_path / "plate"
    plate.mkdir()
    for i in range(40):
        cv2.imwrite(str(plate / f"plate_{i + 1:04d}.png"), np.full((128, 192, 3), 40 + i, np.uint8))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    clip = bpy.data.movieclips.load(str(plate / "plate_0001.png"))
    clip.frame_start = 1001
    import_bundle(bpy.context, path, ImportOptions(points=False, depth=False, clip_path=clip.filepath))
    scene, camera = bpy.context.scene, bpy.context.scene.camera
    assert scene.render.resolution_x == 192 == 2 * quality["width"]
    scene.frame_set(1001 + 21)  # clip index 21
    assert camera[PROPERTY] == pytest.approx(2 * quality["frame_error_px"][21], rel=1e-5)
    summary = camera[SUMMARY]
    assert summary["mean_px"] == pytest.approx(2 * quality["mean_error_px"], rel=1e-3)
    assert list(summary["flagged"]) == [1001 + f for f in BAD] and summary["worst"][0] - 1001 in BAD

    note = quality_note({"alignment": {"quality": quality}}, np.arange(40), 192)  # as a reconstruct logs it
    assert note.startswith(f"solve error {summary['mean_px']:.2f} px average in plate pixels ({summary['grade']}), "
                           f"worst {summary['worst_px'][0]:.2f} px at frame {summary['worst'][0] - 1000} of the clip "
                           "(counting from 1)")
