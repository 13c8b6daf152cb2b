"""Time as the plate's: with a clip's Start Frame and Frame Offset both set, the frames Reconstruct sends the engine
are the clip frames the artist sees in the scene's Start-End, the camera keys land on the scene frames showing
them, and the compositor's plate at a keyed frame is the frame that camera was solved on (a fresh Blender with the
installed extension; the clip an image sequence whose every file is one grey level)."""

import cv2
import numpy as np
import pytest

from tests.addon_session import SCENE, run_bpy

pytest.importorskip("OpenEXR")
FILES = 20  # the clip's frames
LEVEL = 12  # file k (from 1) is grey 12 * k (sRGB, 8 bits): the render tells which file the plate shows


def level_file(value: float) -> float:
    """The file number a rendered (linear) grey came from."""
    srgb = 12.92 * value if value <= 0.0031308 else 1.055 * value ** (1 / 2.4) - 0.055
    return srgb * 255 / LEVEL


def test_start_frame_and_frame_offset_reconstruct_key_and_composite_the_same_frames(addon_zip, tmp_path):
    (tmp_path / "plate").mkdir()
    for k in range(1, FILES + 1):
        cv2.imwrite(str(tmp_path / "plate" / f"plate_{k:04d}.png"), np.full((96, 128, 3), LEVEL * k, np.uint8))
    script = SCENE + """
import numpy as np, OpenEXR
from pathlib import Path
from engine.formats.bundle import write_bundle
from tests.synthetic_bundle import synthetic_reconstruction
rc = importlib.import_module(MOD + ".reconstruct")
importer = importlib.import_module(MOD + ".importer")
scene = bpy.context.scene
clip.frame_start, clip.frame_offset = 1001, 3  # the clip's first file shows at scene frame 998
settings = scene.parallax
settings.use_clip_range, settings.frame_start, settings.frame_end = False, 1003, 1010
settings.import_points = False  # the plate alone in the composite: nothing rendered over it
first, end = rc.reconstruct_options(bpy.context, clip)["frames"]
result["sent"] = [first, end]
# The bundle the engine writes for that request: its frames are the clip frames (0-based) it was sent.
recon = synthetic_reconstruction(num_frames=end - first, size=(48, 64))
recon.frames = np.arange(first, end)
recon.source_clip = sys.argv[2]
bundle = write_bundle(recon, Path(sys.argv[3]) / "bundle")
collection = importer.import_bundle(bpy.context, bundle, importer.options_from_settings(settings, sys.argv[2]))
camera = scene.camera
animation = importlib.import_module(MOD + ".importer.animation")
keys = sorted({int(k.co[0]) for fc in animation.fcurves_of(camera) if fc.data_path == "location"
               for k in fc.keyframe_points})
result["keys"] = keys
result["range"] = [scene.frame_start, scene.frame_end]
scene.render.engine = "CYCLES"
scene.cycles.samples = 1
scene.cycles.device = "CPU"
scene.render.image_settings.file_format = "OPEN_EXR"
shown = {}
for frame in (keys[0], keys[3], keys[-1]):
    scene.frame_set(frame)
    scene.render.filepath = str(Path(sys.argv[3]) / f"f{frame}.exr")
    bpy.ops.render.render(write_still=True)
    with OpenEXR.File(scene.render.filepath) as f:
        pixels = np.array(f.channels()["RGBA"].pixels, np.float32)[..., :3]
    # where the camera is at that frame, in the engine's axes (Blender's (x, y, z) is the engine's (x, -z, y))
    x, y, z = camera.matrix_world.translation
    shown[frame] = {"plate": [float(pixels.mean()), float(np.ptp(pixels))], "camera": [x, -z, y]}
result["shown"] = shown
result["cameras"] = recon.camera_to_world[:, :3, 3].tolist()
report()
"""
    result = run_bpy(script, [addon_zip, tmp_path / "plate" / "plate_0001.png", tmp_path], tmp_path / "profile")
    # Scene frames 1003-1010 show files 6-13 (file k at scene frame k + 1001 - 1 - 3): 0-based frames 5-12.
    assert result["sent"] == [5, 13]
    assert result["keys"] == list(range(1003, 1011)) and result["range"] == [1003, 1010]
    for frame, seen in result["shown"].items():
        index = int(frame) - 1003  # the bundle's frame keyed there
        mean, spread = seen["plate"]
        assert spread < 1e-3 and level_file(mean) == pytest.approx(5 + index + 1, abs=0.05)  # clip frame 6 + index
        np.testing.assert_allclose(seen["camera"], result["cameras"][index], atol=1e-5)
