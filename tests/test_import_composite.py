"""The compositor an import sets up, rendered with the CG hidden: at every render size the composite is the
plate's frame scaled to the render size, its sky (no depth) included."""

import cv2
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
pytest.importorskip("OpenEXR")

from blender_addon.importer import ImportOptions, import_bundle  # noqa: E402
from blender_addon.importer.depth import compositor_tree  # noqa: E402
from blender_addon.importer.transforms import srgb_to_linear  # noqa: E402
from tests.plate_clip import render as _render  # noqa: E402
from tests.plate_clip import write_plate_bundle  # noqa: E402

@pytest.fixture(scope="module")
def plate_bundle(tmp_path_factory):
    return write_plate_bundle(tmp_path_factory.mktemp("plate"))


@pytest.mark.parametrize("percentage", [50, 100, 200])
def test_composite_with_nothing_rendered_is_the_plate(plate_bundle, tmp_path, percentage):
    path, recon, first_file, plates = plate_bundle
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    world = scene.world = bpy.data.worlds.new("bright")  # a background that must not reach the composite
    world.color = (0.0, 1.0, 0.0)
    import_bundle(bpy.context, path, ImportOptions(points=False, clip_path=str(first_file)))
    assert scene.render.resolution_x == plates.shape[2]  # the render size follows the clip
    scene.render.resolution_percentage = percentage
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 1
    scene.render.image_settings.file_format = "OPEN_EXR"
    for i in (0, 1, 7):  # 0 and 1 have sky
        shown = _render(scene, scene.frame_start + i, tmp_path / f"comp{i}.exr")
        h, w = shown.shape[:2]
        assert (h, w) == (plates.shape[1] * percentage // 100, plates.shape[2] * percentage // 100)
        plate = srgb_to_linear(plates[i])
        expected = plate if percentage == 100 else cv2.resize(plate, (w, h), interpolation=cv2.INTER_LINEAR)
        error = np.abs(shown - expected)
        if percentage == 100:
            assert error.max() < 1e-3
        else:  # Blender's bilinear scaling against OpenCV's: differences at the checker's edges only
            assert error.mean() < 0.01 and np.quantile(error, 0.98) < 0.05
        sky = cv2.resize((recon.depth[i] == 0).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        if i < 2:  # the plate's sky, not the CG's (green) world nor its transparent background
            assert sky.mean() > 0.01 and error[sky].max() < 0.05


def test_reimport_leaves_one_working_plate_chain(plate_bundle, tmp_path):
    """A re-import replaces the compositor nodes, and Blender drops the drivers of removed nodes (on 4.x those
    aligning the plate's scaling): none is left pointing at nothing, and the composite is still the plate."""
    path, _, first_file, plates = plate_bundle
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    for _ in range(2):
        import_bundle(bpy.context, path, ImportOptions(points=False, clip_path=str(first_file)))
    tree = compositor_tree(scene)
    assert sum(n.bl_idname == "CompositorNodeMovieClip" for n in tree.nodes) == 1
    drivers = tree.animation_data.drivers if tree.animation_data else []
    # The plate depth's scale to scene units (the origin's scale), and only 4.2's Scale, which has no
    # interpolation setting, needs the four drivers aligning the plate (importer/depth.py).
    aligned = bpy.app.version < (5, 0, 0) and "interpolation" not in bpy.types.CompositorNodeScale.bl_rna.properties
    assert len(drivers) == 1 + (4 if aligned else 0)
    for curve in drivers:
        tree.path_resolve(curve.data_path)  # raises if the driven node is gone
    scene.render.resolution_percentage = 200
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.render.image_settings.file_format = "OPEN_EXR"
    shown = _render(scene, scene.frame_start, tmp_path / "again.exr")
    h, w = shown.shape[:2]
    expected = cv2.resize(srgb_to_linear(plates[0]), (w, h), interpolation=cv2.INTER_LINEAR)
    assert np.abs(shown - expected).mean() < 0.01
