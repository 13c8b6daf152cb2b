"""The export's options (dataclasses only: the command line and the Blender add-on both build them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CloudOptions:
    """voxel_size: voxel edge in scene units; 0 = automatic (AUTO_VOXEL_PIXELS at the median depth).
    confidence_quantile: drop points below this quantile of the confidences (0 = keep all).
    keep_moving: keep the points found to move (no motion test)."""

    voxel_size: float = 0.0
    confidence_quantile: float = 0.1
    keep_moving: bool = False


@dataclass
class ExportOptions:
    """clip: the footage (frames for COLMAP and nerfstudio, the guide for depth); None = the bundle's source_clip.
    cloud: how the merged static point cloud is made (COLMAP, nerfstudio, USD and PLY carry it)."""

    clip: Path | None = None
    cloud: CloudOptions = field(default_factory=CloudOptions)
