"""`--format depth`: the depth maps at the plate's resolution, upsampled edge-aware guided by the plate
(export/upsample.py), as depth/NNNNNN.exr in the bundle's depth format (channels Z, Y, confidence; the camera in
worldToCamera / worldToNDC, with K in plate pixels; docs/formats.md). NNNNNN = the clip's frame index.
"""

from __future__ import annotations

from pathlib import Path

from ..formats.exr import read_depth_exr, write_depth_exr
from .options import ExportOptions
from .plates import read_plates
from .shot import Shot
from .upsample import upsample_depth


def write(shot: Shot, folder: Path, options: ExportOptions) -> str:
    plates = read_plates(shot, options.clip or Path(shot.bundle.source_clip))
    (folder / "depth").mkdir()
    K = shot.plate_K()
    for i, frame in enumerate(shot.bundle.frames):
        depth, confidence = read_depth_exr(frame.depth_path)
        depth, confidence = upsample_depth(depth, confidence, plates[i])
        write_depth_exr(folder / "depth" / f"{frame.frame:06d}.exr", depth, confidence, K[i],
                        shot.camera_to_world[i])
    (mh, mw), (ph, pw) = shot.map_size, shot.plate_size
    return f"depth/: {len(shot.frames)} depth maps at {pw}x{ph} (from {mw}x{mh}), edge-aware, guided by the plate"
