"""The imported scene rendered with EEVEE (headless bpy; it renders here through EGL, software OpenGL, at a tiny
size): the compositor gives the plate where nothing is rendered, the CG's depth pass Z-combines it with the plate,
and Add Shadow Catcher's plane shows the plate through (EEVEE has no shadow catcher: the plane's EEVEE output
is a holdout). The engine is BLENDER_EEVEE_NEXT in Blender 4.2-4.5 and BLENDER_EEVEE in 5.x."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
pytest.importorskip("OpenEXR")
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Vector  # noqa: E402

from blender_addon.importer import ImportOptions, import_bundle  # noqa: E402
from blender_addon.importer.shadow_catcher import background_layer  # noqa: E402
from blender_addon.importer.transforms import srgb_to_linear  # noqa: E402
from blender_addon.importer.points import emission_material  # noqa: E402
from tests.plate_clip import render  # noqa: E402

NAME = "plate_0001"
EEVEE = "BLENDER_EEVEE" if bpy.app.version >= (5, 0, 0) else "BLENDER_EEVEE_NEXT"

pytestmark = pytest.mark.usefixtures("importer_operators")


def _eevee_scene(plate_bundle):
    """The bundle imported with its plate into an empty scene, the points hidden from the render, EEVEE."""
    path, _, first_file, _ = plate_bundle
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    import_bundle(bpy.context, path, ImportOptions(clip_path=str(first_file)))
    bpy.data.objects[f"{NAME} Points"].hide_render = True
    scene.render.engine = EEVEE
    assert scene.render.engine == EEVEE
    scene.render.image_settings.file_format = "OPEN_EXR"
    return scene


def test_eevee_composite_with_nothing_rendered_is_the_plate(plate_bundle, tmp_path):
    _, recon, _, plates = plate_bundle
    scene = _eevee_scene(plate_bundle)
    shown = render(scene, scene.frame_start, tmp_path / "plate.exr")
    plate = srgb_to_linear(plates[0])
    assert shown.shape == plate.shape
    sky = np.kron(recon.depth[0] == 0, np.ones((2, 2), bool))  # the plate is twice the maps' size
    assert sky.mean() > 0.01
    error = np.abs(shown - plate)
    assert error.max() < 1e-3 and error[sky].max() < 1e-3  # the sky is the plate's, not the render's


def _ball(location, radius: float, collection, material) -> bpy.types.Object:
    bpy.ops.mesh.primitive_uv_sphere_add(radius=radius, location=location)
    ball = bpy.context.active_object
    for other in ball.users_collection:
        other.objects.unlink(ball)
    collection.objects.link(ball)
    ball.data.materials.append(material)
    return ball


def test_eevee_renders_the_shadow_catcher_setup_cg_over_the_plate(plate_bundle, tmp_path):
    """With Add Shadow Catcher's view layers, EEVEE renders: the plate everywhere but on the CG ball in front
    of the wall (no plane: the catcher is a holdout in EEVEE), and a ball behind the wall stays hidden (the
    EEVEE depth pass is the planar depth the plate's is; and the Background layer, whose CG is indirect-only,
    which EEVEE does not do, holds the CG out, or it would show the ball over the plate, wall or not)."""
    _, _, _, plates = plate_bundle
    scene = _eevee_scene(plate_bundle)
    cg = bpy.data.collections.new("CG")
    scene.collection.children.link(cg)
    bpy.context.view_layer.objects.active = scene.camera
    assert bpy.ops.parallax.add_shadow_catcher() == {"FINISHED"}
    assert background_layer(scene) is not None
    front_at, front_radius = Vector((-0.6, 6.0, -1.0)), 0.25  # above the floor, in front of the wall (y = 12)
    behind_at, behind_radius = Vector((1.0, 14.0, 1.0)), 0.5
    glow = emission_material("glow", (0.9, 0.9, 0.2, 1.0))  # unlit: no light needed
    _ball(front_at, front_radius, cg, glow)
    _ball(behind_at, behind_radius, cg, glow)

    shown = render(scene, 1, tmp_path / "shadow.exr")
    plate = srgb_to_linear(plates[0])
    h, w = shown.shape[:2]
    v, u = np.mgrid[0:h, 0:w]

    def disc(centre, radius, margin):
        """Render pixels within `margin` pixels of the ball's outline (its bounding circle's)."""
        x, y, distance = world_to_camera_view(scene, scene.camera, centre)
        cu, cv = x * w, (1 - y) * h
        r = radius / distance * scene.camera.data.lens / scene.camera.data.sensor_width * w
        return np.hypot(u + 0.5 - cu, v + 0.5 - cv) < r + margin, (int(cv), int(cu))

    front, (fy, fx) = disc(front_at, front_radius, 3)
    behind, (by, bx) = disc(behind_at, behind_radius, 0)
    assert front.sum() > 20 and behind.sum() > 20 and not (front & behind).any()
    assert np.abs(shown[fy, fx] - plate[fy, fx]).max() > 0.1  # the CG ball in front shows
    np.testing.assert_allclose(shown[behind], plate[behind], atol=1e-3)  # the ball behind the wall does not
    assert np.abs(shown - plate)[~front].max() < 1e-3  # nor the catcher, its shadow or anything else
