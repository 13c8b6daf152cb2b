"""The solve quality of a bundle in Blender (bpy 5.0.1): the camera's animated `parallax_solve_error` in plate
pixels, the panel's summary in scene frames, and the operator that jumps to a worst frame."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.importer import ImportOptions, import_bundle  # noqa: E402
from blender_addon.importer.quality import PROPERTY, SUMMARY, PARALLAX_OT_go_to_frame  # noqa: E402
from engine.alignment import align  # noqa: E402
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
