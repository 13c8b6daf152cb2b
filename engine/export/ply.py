"""`--format ply`: the merged static point cloud alone (points.ply; engine world, OpenCV axes)."""

from __future__ import annotations

from pathlib import Path

from ..formats.ply import write_ply
from .cloud import merge_static_cloud
from .options import ExportOptions
from .shot import Shot

FILE = "points.ply"


def write(shot: Shot, folder: Path, options: ExportOptions) -> str:
    cloud = merge_static_cloud(shot, options.cloud)
    write_ply(folder / FILE, cloud.xyz, cloud.rgb, cloud.confidence)
    return f"{FILE}: {cloud.describe()}"

