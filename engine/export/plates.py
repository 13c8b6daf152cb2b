"""The shot's frames as image files (COLMAP and nerfstudio train on them), read from the source clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..clips.video import probe_video, read_video
from ..errors import InputError
from .shot import Shot


def plate_name(frame: int) -> str:
    """File name of a clip frame (0-based index) in images/."""
    return f"{int(frame):06d}.png"


def read_plates(shot: Shot, clip: Path) -> np.ndarray:
    """uint8[N, H, W, 3] the shot's frames from `clip` (sRGB) at the plate size.

    The clip must have the plate's aspect ratio (it is the footage the bundle was made from)."""
    if not clip.exists():
        raise InputError(f"the clip {clip} is not there; the frames are read from it",
                         "pass --clip with the footage the bundle was made from")
    (h, w), _ = probe_video(clip)
    ph, pw = shot.plate_size
    if abs(w / h - pw / ph) > 0.01 * pw / ph:
        raise InputError(f"the clip {clip} is {w}x{h}, the bundle's plate {pw}x{ph}: another aspect ratio",
                         "pass --clip with the footage the bundle was made from")
    first, last = int(shot.frames.min()), int(shot.frames.max())
    frames = read_video(clip, start=first, stop=last + 1, size=(ph, pw), fps=shot.fps)
    index = {int(f): k for k, f in enumerate(frames.frame_indices)}
    missing = [int(f) for f in shot.frames if int(f) not in index]
    if missing:
        raise InputError(f"the clip {clip} lacks frame {missing[0]} of the bundle",
                         "pass --clip with the footage the bundle was made from")
    return frames.frames[[index[int(f)] for f in shot.frames]]


def write_plates(shot: Shot, clip: Path, folder: Path) -> list[Path]:
    """Write the shot's frames from `clip` as folder/NNNNNN.png (PNG, sRGB) at the plate size; the paths."""
    plates = read_plates(shot, clip)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f, rgb in zip(shot.frames, plates):
        path = folder / plate_name(f)
        if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)):
            raise InputError(f"could not write {path}", "check the output folder is writable")
        paths.append(path)
    return paths
