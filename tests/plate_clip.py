"""A synthetic bundle with its clip as a lossless PNG sequence (the plate), and rendering a scene's compositor
to float pixels: for the tests of the import's compositor and timing (headless bpy)."""

from pathlib import Path

import bpy
import cv2
import numpy as np
import OpenEXR

from engine.formats.bundle import write_bundle
from tests.synthetic_bundle import synthetic_reconstruction

SKY = (120, 170, 230)  # sRGB
UPSCALE = 2  # the clip is twice the depth maps' size, as a plate is larger than the processing size


def write_plate_bundle(root: Path, recon=None):
    """(bundle, its Reconstruction, the clip's first file, the plate frames uint8[N, H, W, 3]): the clip is
    the bundle's frames as a PNG sequence (lossless), scaled up by UPSCALE, the sky (no depth) painted SKY.
    recon: the Reconstruction to write (default: tests/synthetic_bundle.py's scene)."""
    recon = recon if recon is not None else synthetic_reconstruction()
    path = write_bundle(recon, root / "bundle")
    h, w = recon.depth.shape[1:]
    painted = np.where((recon.depth == 0)[..., None], np.array(SKY, np.uint8), recon.rgb)
    plates = np.stack([cv2.resize(rgb, (w * UPSCALE, h * UPSCALE), interpolation=cv2.INTER_LINEAR)
                       for rgb in painted])
    (root / "plate").mkdir()
    for i, rgb in enumerate(plates):
        cv2.imwrite(str(root / "plate" / f"plate_{i + 1:04d}.png"), rgb[..., ::-1])
    return path, recon, root / "plate" / "plate_0001.png", plates


def render(scene, frame, path):
    """Render `frame` through the compositor; float32[H, W, 3] scene-linear, top row first."""
    scene.frame_set(frame)
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    with OpenEXR.File(str(path)) as f:
        return np.array(f.channels()["RGBA"].pixels, np.float32)[..., :3]
