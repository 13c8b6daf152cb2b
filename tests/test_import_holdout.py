"""The compositor's hold-out from the bundle's motion mattes (headless bpy): a CG plane in front of the whole plate
shows everywhere the matte says static, and the plate (its moving ball) stays on top where the matte says moving;
the group's Hold Out switch turns it off; bundles written before the mattes import without one."""

import json
import shutil

import cv2
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
pytest.importorskip("OpenEXR")

from blender_addon.importer import ImportOptions, import_bundle  # noqa: E402
from blender_addon.importer.depth import compositor_tree  # noqa: E402
from blender_addon.importer.transforms import srgb_to_linear  # noqa: E402
from engine.formats.bundle import read_bundle  # noqa: E402
from engine.formats.matte import read_matte_exr  # noqa: E402
from blender_addon.importer.points import emission_material  # noqa: E402
from tests.plate_clip import UPSCALE, write_plate_bundle  # noqa: E402
from tests.plate_clip import render as _render  # noqa: E402
from tests.synthetic_bundle import add_moving_ball, synthetic_reconstruction  # noqa: E402

CG = (0.2, 0.3, 0.9)  # the plane's emission, scene-linear
PLANE_DISTANCE = 0.5  # in front of every plate surface (the nearest floor is about 3 units away)
FRAMES = (5, 8, 11)  # the ball is in view and moves
EDGE = 3  # render pixels kept clear of the matte's edges (scaled bilinearly)


@pytest.fixture(scope="module")
def ball_plate(tmp_path_factory):
    recon = synthetic_reconstruction(num_frames=16)
    add_moving_ball(recon)
    return write_plate_bundle(tmp_path_factory.mktemp("holdout"), recon)


def _scene_with_cg_plane(path, first_file):
    """Import the bundle with its plate; add an emissive plane filling the camera's view at PLANE_DISTANCE (in
    focus, so the group's defocus leaves it as it is)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    import_bundle(bpy.context, path, ImportOptions(points=False, clip_path=str(first_file)))
    bpy.ops.mesh.primitive_plane_add(size=100 * PLANE_DISTANCE)
    plane = bpy.context.active_object
    plane.parent = scene.camera
    plane.matrix_parent_inverse.identity()
    plane.location = (0.0, 0.0, -PLANE_DISTANCE)  # the camera looks down its -z
    plane.data.materials.append(emission_material("CG", (*CG, 1.0)))
    scene.camera.data.dof.focus_distance = PLANE_DISTANCE
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False  # a denoiser would change the plane's one colour
    scene.render.image_settings.file_format = "OPEN_EXR"
    return scene


def _group_node(scene):
    return next(n for n in compositor_tree(scene).nodes if n.bl_idname == "CompositorNodeGroup")


def _regions(matte_file, size):
    """(moving, static) bool[H, W] at render size, each EDGE pixels clear of the other."""
    moving, _, _ = read_matte_exr(matte_file)
    up = cv2.resize(moving.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    kernel = np.ones((2 * EDGE + 1, 2 * EDGE + 1), np.uint8)
    return cv2.erode(up, kernel) > 0, cv2.erode(1 - up, kernel) > 0


def test_the_plate_stays_on_top_where_the_matte_says_moving(ball_plate, tmp_path):
    path, _, first_file, plates = ball_plate
    scene = _scene_with_cg_plane(path, first_file)
    assert scene.render.resolution_x == plates.shape[2]
    bundle = read_bundle(path)
    assert bundle.has_mattes
    held_total = 0
    for i in FRAMES:
        shown = _render(scene, scene.frame_start + i, tmp_path / f"held{i}.exr")
        moving, static = _regions(bundle.frames[i].matte_path, shown.shape[:2])
        plate = srgb_to_linear(plates[i])
        print(f"frame {i}: {moving.sum()} moving and {static.sum()} static render pixels away from the matte's "
              f"edge; plate error {np.abs(shown - plate)[moving].max(initial=0):.2e}, "
              f"CG error {np.abs(shown - CG)[static].max():.2e}")
        assert moving.sum() > 20 and static.sum() > 0.8 * static.size
        np.testing.assert_allclose(shown[moving], plate[moving], atol=1e-3)  # the ball, over the CG plane
        np.testing.assert_allclose(shown[static], np.broadcast_to(CG, shown[static].shape), atol=1e-3)
        held_total += moving.sum()
    assert held_total > 100

    _group_node(scene).inputs["Hold Out"].default_value = 0.0  # the switch: the CG over everything
    shown = _render(scene, scene.frame_start + FRAMES[1], tmp_path / "off.exr")
    np.testing.assert_allclose(shown, np.broadcast_to(CG, shown.shape), atol=1e-3)


def test_bundles_without_mattes_composite_without_hold_out(ball_plate, tmp_path):
    """A bundle written before the motion mattes (no `matte` entries, no mattes/ folder) still imports; nothing
    is held out."""
    path, _, first_file, _ = ball_plate
    old = shutil.copytree(path, tmp_path / "old")
    scene_json = json.loads((old / "scene.json").read_text())
    for entry in scene_json["frames"]:
        del entry["matte"]
    del scene_json["mattes"]
    (old / "scene.json").write_text(json.dumps(scene_json))
    shutil.rmtree(old / "mattes")
    assert not read_bundle(old).has_mattes
    scene = _scene_with_cg_plane(old, first_file)
    assert not any(image.name.endswith("Motion Matte") for image in bpy.data.images)
    assert not _group_node(scene).inputs["Motion Matte"].is_linked
    shown = _render(scene, scene.frame_start + FRAMES[1], tmp_path / "old.exr")
    np.testing.assert_allclose(shown, np.broadcast_to(CG, shown.shape), atol=1e-3)
    assert UPSCALE * read_bundle(old).image_size[1] == shown.shape[1]
