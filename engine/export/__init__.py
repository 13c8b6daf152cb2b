"""Exports of a bundle to other tools' formats (`python -m engine export`), one module per format.

Each format module defines `write(shot, folder, options) -> str`: it writes into the (empty, staged) folder
and returns one line saying what it wrote. Everything here needs numpy and the standard library only (OpenCV for the frames, OpenEXR for depth,
`pxr` for USD): no torch.
"""

from dataclasses import dataclass, field
from pathlib import Path

from .cloud import CloudOptions

FORMATS = {
    "colmap": ".colmap",
    "nerfstudio": ".nerfstudio",
    "chan": ".chan",
    "usd": ".usd",
    "ply": ".ply",
    "depth": ".depth",
}


@dataclass
class ExportOptions:
    """clip: the footage (frames for COLMAP and nerfstudio); None = the bundle's source_clip.
    cloud: how the merged static point cloud is made (COLMAP, nerfstudio, USD and PLY carry it)."""

    clip: Path | None = None
    cloud: CloudOptions = field(default_factory=CloudOptions)
