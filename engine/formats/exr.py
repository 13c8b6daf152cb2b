"""Depth EXR files: float32, planar z in scene units, with a confidence channel.

Channel `Y` holds depth, so Blender, Nuke and image viewers show it as a grey image;
channel `confidence` holds the per-pixel confidence (0 = invalid, depth then 0 too).
"""

from pathlib import Path

import numpy as np
import OpenEXR

DEPTH_CHANNEL = "Y"
CONFIDENCE_CHANNEL = "confidence"


def write_depth_exr(path: str | Path, depth: np.ndarray, confidence: np.ndarray) -> None:
    """depth, confidence: float32[H, W]; depth is planar z (scene units), 0 where invalid."""
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    channels = {
        DEPTH_CHANNEL: np.ascontiguousarray(depth, np.float32),
        CONFIDENCE_CHANNEL: np.ascontiguousarray(confidence, np.float32),
    }
    with OpenEXR.File(header, channels) as f:
        f.write(str(path))


def read_depth_exr(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Returns (depth float32[H, W], confidence float32[H, W])."""
    with OpenEXR.File(str(path)) as f:
        ch = f.channels()
        return np.array(ch[DEPTH_CHANNEL].pixels, np.float32), np.array(ch[CONFIDENCE_CHANNEL].pixels, np.float32)
