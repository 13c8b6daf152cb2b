"""Draw the matchmove figure of docs/import.md into docs/images/ (or OUT_DIR): a CG ball composited over the
plate by the imported compositor at render sizes 50 % and 100 % (the synthetic bundle and its PNG-sequence
plate of tests/plate_clip.py; the plate's sky kept).

    .venv/bin/python scripts/matchmove_figures.py [OUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for the add-on and tests

import bpy  # noqa: E402

from blender_addon.importer import ImportOptions, import_bundle  # noqa: E402
from tests.plate_clip import render, write_plate_bundle  # noqa: E402

SHOWN_WIDTH = 384  # each panel's width in the figure


def composite_figure(out: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path, _, first_file, _ = write_plate_bundle(tmp)
        bpy.ops.wm.read_factory_settings(use_empty=True)
        collection = import_bundle(bpy.context, path, ImportOptions(clip_path=str(first_file)))
        scene = bpy.context.scene
        for obj in collection.objects:
            obj.hide_render = obj.type == "MESH"  # the points stay in the viewport: the CG is the ball
        bpy.ops.mesh.primitive_uv_sphere_add(radius=0.5, location=(0.4, 6.0, -1.0))  # on the floor (z = -1.5)
        ball = bpy.context.object
        material = bpy.data.materials.new("Ball")
        material.diffuse_color = (0.9, 0.1, 0.05, 1.0)
        bsdf = material.node_tree.nodes["Principled BSDF"] if material.node_tree else None
        if bsdf is not None:
            bsdf.inputs["Base Color"].default_value = (0.9, 0.1, 0.05, 1.0)
        ball.data.materials.append(material)
        sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
        sun.rotation_euler = (0.6, 0.2, 0.5)
        scene.collection.objects.link(sun)
        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = 16
        scene.render.image_settings.file_format = "OPEN_EXR"
        panels = []
        for percentage in (50, 100):
            scene.render.resolution_percentage = percentage
            linear = render(scene, scene.frame_start, tmp / f"comp{percentage}.exr")
            srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(np.clip(linear, 0, None), 1 / 2.4)
                            - 0.055)
            image = (np.clip(srgb, 0, 1) * 255).round().astype(np.uint8)[..., ::-1]
            h, w = image.shape[:2]
            shown = cv2.resize(image, (SHOWN_WIDTH, SHOWN_WIDTH * h // w), interpolation=cv2.INTER_NEAREST)
            cv2.putText(shown, f"render {percentage} % ({w}x{h})", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (255, 255, 255), 1, cv2.LINE_AA)
            panels.append(shown)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "composite_50_100.png"
    cv2.imwrite(str(target), np.concatenate([panels[0], np.full((panels[0].shape[0], 8, 3), 255, np.uint8),
                                             panels[1]], axis=1))
    return target


if __name__ == "__main__":
    print(composite_figure(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]
                           / "docs" / "images"))
