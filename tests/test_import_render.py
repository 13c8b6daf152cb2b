"""Imported points render in Cycles: through the imported camera they reproduce the frame they came from, and
the headless entry point writes a .blend and a preview picture."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.importer import ImportOptions, import_bundle  # noqa: E402
from blender_addon.importer.headless import PREVIEW_SIZE, bundle_to_blend  # noqa: E402


def _png_pixels(path):
    """uint8[H, W, 4] of a PNG, top row first (Blender images store the bottom row first)."""
    image = bpy.data.images.load(str(path))
    w, h = image.size
    pixels = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    return np.round(pixels.reshape(h, w, 4)[::-1] * 255).astype(np.uint8)


def test_points_render_the_frame_they_came_from(bundle, tmp_path):
    path, recon = bundle
    bpy.ops.wm.read_factory_settings(use_empty=True)
    # Each point sits on its pixel's centre ray; small spheres keep neighbours off that ray.
    import_bundle(bpy.context, path, ImportOptions(point_radius=0.01, depth=False))
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.render.dither_intensity = 0.0
    scene.cycles.pixel_filter_type = "BOX"
    scene.cycles.filter_width = 0.01  # the sample goes through the pixel centre
    scene.view_settings.view_transform = "Standard"  # sRGB out = sRGB in
    scene.render.image_settings.file_format = "PNG"
    i = 1  # a frame with sky
    scene.frame_set(scene.frame_start + i)
    scene.render.filepath = str(tmp_path / "frame.png")
    bpy.ops.render.render(write_still=True)
    shown = _png_pixels(tmp_path / "frame.png")[..., :3].astype(int)
    plate = recon.rgb[i].astype(int)
    valid = recon.depth[i] > 0
    assert np.abs(shown - plate)[valid].max() <= 1  # sRGB -> linear -> render -> sRGB is lossless
    assert shown[~valid].max() < 20  # no points where the frame had none (sky)


def test_bundle_to_blend_saves_and_renders(bundle, tmp_path):
    path, _ = bundle
    blend, png = tmp_path / "out" / "scene.blend", tmp_path / "out" / "preview.png"
    bundle_to_blend(path, blend, png, samples=2)
    pixels = _png_pixels(png)
    assert pixels.shape[:2] == (PREVIEW_SIZE[1], PREVIEW_SIZE[0])
    r, g, b = (pixels[..., k].astype(int) for k in range(3))
    assert np.mean((b > r + 60) & (b > 120)) > 0.01  # blue checker points
    assert np.mean((r > 200) & (g > 150) & (b < 90)) > 0.001  # yellow frusta
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    assert "synthetic-shot" in bpy.data.collections
    assert bpy.context.scene.camera.name == "synthetic-shot Camera"
    assert "Parallax Preview" not in bpy.data.collections  # the preview set-up is not saved
