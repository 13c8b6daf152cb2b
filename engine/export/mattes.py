"""`--format mattes`: a motion matte per frame, mattes/NNNNNN.exr at the bundle's map resolution (NNNNNN = the
clip's frame index): every pixel with depth is tested against the other frames (engine/motion.py).

Channels (float32, single part, scanline, ZIP): `Y` = 1 where the pixel shows something moving, else 0 (grey in
viewers, the matte a compositor holds out); `score` = the fraction of the frames that saw the pixel's place and
contradicted it (0 where none saw it); `A` = 1 where the pixel had depth to test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenEXR

from ..formats.exr import read_depth_exr
from ..motion import is_moving, motion_votes
from .options import ExportOptions
from .shot import Shot, read_depth_maps


def frame_mattes(shot: Shot) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(moving bool[N, H, W], score float32[N, H, W], tested bool[N, H, W]) at the map resolution."""
    near = read_depth_maps(shot)
    h, w = shot.map_size
    v, u = np.mgrid[0:h, 0:w]
    moving = np.zeros((len(shot.frames), h, w), bool)
    score = np.zeros((len(shot.frames), h, w), np.float32)
    tested = np.zeros((len(shot.frames), h, w), bool)
    w2c = shot.world_to_camera()
    for i, f in enumerate(shot.bundle.frames):
        depth, _ = read_depth_exr(f.depth_path)
        valid = depth > 0
        z = depth[valid].astype(np.float64)
        rays = np.stack([u[valid] + 0.5, v[valid] + 0.5, np.ones_like(z)], axis=1) @ np.linalg.inv(shot.K[i]).T
        c2w = np.linalg.inv(w2c[i])
        xyz = (rays * z[:, None]) @ c2w[:3, :3].T + c2w[:3, 3]
        votes, checked = motion_votes(shot.K, w2c, near, xyz, np.full(len(z), i))
        moving[i][valid] = is_moving(votes, checked)
        score[i][valid] = votes / np.maximum(checked, 1)
        tested[i] = valid
    return moving, score, tested


def write(shot: Shot, folder: Path, options: ExportOptions) -> str:
    moving, score, tested = frame_mattes(shot)
    (folder / "mattes").mkdir()
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    for i, f in enumerate(shot.frames):
        channels = {"Y": moving[i].astype(np.float32), "score": score[i], "A": tested[i].astype(np.float32)}
        with OpenEXR.File(header, channels) as exr:
            exr.write(str(folder / "mattes" / f"{int(f):06d}.exr"))
    (h, w) = shot.map_size
    return (f"mattes/: {len(shot.frames)} motion mattes at {w}x{h}; "
            f"{100 * moving.sum() / max(tested.sum(), 1):.2f} % of the pixels with depth moving")
