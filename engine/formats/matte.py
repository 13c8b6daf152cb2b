"""Motion matte EXR files: which pixels of a frame show something moving (engine/motion.py), one per frame, in a
bundle's `mattes/` folder and in the `mattes` export.

Channels (single part, scanline, ZIP, float32, at the depth maps' resolution):
  Y      1 where the pixel shows something moving, else 0: the matte a compositor holds out (viewers and
         Blender's image loader show Y as a grey image);
  score  the fraction of the frames that saw the pixel's place and contradicted it (0 where none saw it);
  A      1 where the pixel had depth to test, else 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .exr import FLOAT, exr_header

MOVING_CHANNEL = "Y"
SCORE_CHANNEL = "score"
TESTED_CHANNEL = "A"


def write_matte_exr(path: str | Path, moving: np.ndarray, score: np.ndarray, tested: np.ndarray) -> None:
    """moving bool[H, W], score float32[H, W] in [0, 1], tested bool[H, W]."""
    import OpenEXR  # not in Blender's Python: only the engine writes and reads pixels

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    channels = {MOVING_CHANNEL: moving.astype(np.float32), SCORE_CHANNEL: np.ascontiguousarray(score, np.float32),
                TESTED_CHANNEL: tested.astype(np.float32)}
    with OpenEXR.File(header, channels) as f:
        f.write(str(path))


def read_matte_exr(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(moving bool[H, W], score float32[H, W], tested bool[H, W]) of a matte file."""
    import OpenEXR

    _check_channels(path)
    with OpenEXR.File(str(path)) as f:
        ch = f.channels()
        return (np.asarray(ch[MOVING_CHANNEL].pixels) > 0.5, np.array(ch[SCORE_CHANNEL].pixels, np.float32),
                np.asarray(ch[TESTED_CHANNEL].pixels) > 0.5)


def check_matte_exr(path: str | Path, image_size: tuple[int, int]) -> None:
    """InputError unless `path` is a whole single-part matte EXR of image_size (H, W) with its float channels
    (standard library only: the add-on checks a bundle's mattes with it before importing)."""
    header = _check_channels(path)
    if not header.scanline or header.size != tuple(image_size):
        raise InputError(f"{path} is a {header.size[1]}x{header.size[0]} {'' if header.scanline else 'tiled '}EXR, "
                         f"not a motion matte of the bundle's {image_size[1]}x{image_size[0]} maps",
                         "re-run the engine to rewrite the bundle")


def _check_channels(path: str | Path):
    header = exr_header(path)
    if any(header.channels.get(name) != FLOAT for name in (MOVING_CHANNEL, SCORE_CHANNEL, TESTED_CHANNEL)):
        raise InputError(f"{path} has the channels {sorted(header.channels)}, not the float {MOVING_CHANNEL}, "
                         f"{SCORE_CHANNEL} and {TESTED_CHANNEL} of a motion matte",
                         "re-run the engine to rewrite the bundle")
    return header
