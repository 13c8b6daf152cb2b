"""The compositor an import sets up, rendered with the CG hidden: at every render size the composite is the
plate's frame scaled to the render size, its sky (no depth) included."""

import cv2
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
pytest.importorskip("OpenEXR")

from blender_addon.importer import ImportOptions, import_bundle  # noqa: E402
from blender_addon.importer.depth import compositor_output, compositor_tree  # noqa: E402
from blender_addon.importer.transforms import srgb_to_linear  # noqa: E402
from tests.plate_clip import render as _render  # noqa: E402
from engine.formats.bundle import write_bundle  # noqa: E402
from engine.formats.matte import write_matte_exr  # noqa: E402
from tests.plate_clip import UPSCALE  # noqa: E402
from tests.synthetic_bundle import synthetic_reconstruction  # noqa: E402

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
    # interpolation setting, needs four drivers aligning each of the plate, the depth and the matte
    # (importer/depth.py).
    aligned = bpy.app.version < (5, 0, 0) and "interpolation" not in bpy.types.CompositorNodeScale.bl_rna.properties
    assert len(drivers) == 1 + (3 * 4 if aligned else 0)
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


BOX = (13, 30, 21, 42)  # rows and columns [start, end) of a box in the maps' pixels (the plate's are UPSCALE x)
NEAR, FAR = 2.0, 4.0  # the box's depth and the rest's
DARK, BRIGHT = 50, 200  # the plate outside and inside the box (sRGB)


@pytest.fixture(scope="module")
def box_bundle(tmp_path_factory):
    """A bundle whose depth maps, motion mattes and plate show one box with sharp edges at the same place."""
    root = tmp_path_factory.mktemp("box")
    recon = synthetic_reconstruction(num_frames=2, zoom=False)
    top, bottom, left, right = BOX
    inside = np.zeros(recon.image_size, bool)
    inside[top:bottom, left:right] = True
    recon.depth[:] = np.where(inside, NEAR, FAR)
    recon.rgb[:] = np.where(inside, BRIGHT, DARK)[..., None].astype(np.uint8)
    path = write_bundle(recon, root / "bundle")
    for matte in sorted((path / "mattes").iterdir()):
        write_matte_exr(matte, inside, inside.astype(np.float32), np.ones_like(inside))
    (root / "plate").mkdir()
    h, w = recon.image_size
    for i, rgb in enumerate(recon.rgb):  # exactly UPSCALE x: the box's edges at UPSCALE x the maps'
        plate = cv2.resize(rgb, (w * UPSCALE, h * UPSCALE), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(root / "plate" / f"plate_{i + 1:04d}.png"), plate[..., ::-1])
    return path, root / "plate" / "plate_0001.png"


def _box(values: np.ndarray, outside: float, inside: float) -> tuple[np.ndarray, float, float]:
    """(centre (x, y), area, the largest share of the box anywhere on the image's border) of the box in an
    image of the values `outside` and `inside`, in pixels (a pixel spans [i, i + 1))."""
    share = (values - outside) / (inside - outside)
    v, u = np.mgrid[0:share.shape[0], 0:share.shape[1]]
    border = np.concatenate([share[0], share[-1], share[:, 0], share[:, -1]])
    return (np.array([(share * (u + 0.5)).sum(), (share * (v + 0.5)).sum()]) / share.sum(), share.sum(),
            np.abs(border).max())


@pytest.mark.parametrize("percentage", [50, 100, 200, 400])
def test_depth_and_matte_land_on_the_plates_pixels(box_bundle, tmp_path, percentage):
    """The compositor scales the plate, the plate's depth and the motion matte to the render size: each one's
    box lands on the same render pixels (in every Blender: 4.x's Scale node needs corrections, importer/depth.py),
    and none fades at the image's border (a depth fading to 0 there would be sky)."""
    path, first_file = box_bundle
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    import_bundle(bpy.context, path, ImportOptions(points=False, clip_path=str(first_file)))
    scene.render.resolution_percentage = percentage
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.render.image_settings.file_format = "OPEN_EXR"
    tree = compositor_tree(scene)
    group = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeGroup")
    scale = UPSCALE * percentage / 100  # render pixels per map pixel
    top, bottom, left, right = BOX
    expected = np.array([(left + right) / 2, (top + bottom) / 2]) * scale
    found = {}
    for name, outside, inside in (("Plate", *srgb_to_linear(np.array([DARK, BRIGHT], np.uint8))),
                                  ("Plate Depth", FAR, NEAR), ("Motion Matte", 0.0, 1.0)):
        tree.links.new(group.inputs[name].links[0].from_socket, compositor_output(tree))  # what the group gets
        shown = _render(scene, scene.frame_start, tmp_path / f"{percentage}.exr")[..., 0]
        found[name] = _box(shown, outside, inside)
    for name, (centre, area, border) in found.items():
        assert abs(area / ((bottom - top) * (right - left) * scale ** 2) - 1) < 0.01, (name, area)
        assert border < 1e-3, (name, border)  # 4.2 faded the depth there before its border was extended
        np.testing.assert_allclose(centre, expected, atol=0.02, err_msg=name)  # render pixels; 4.2 was 1.5 off
