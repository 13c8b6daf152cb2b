"""`--format mattes`: a motion matte per frame, mattes/NNNNNN.exr at the bundle's map resolution (NNNNNN = the
clip's frame index): every pixel with depth is tested against the other frames (engine/motion.py). The files are
those a bundle carries in its own `mattes/` (engine/formats/matte.py: `Y` = 1 where something moves, `score`,
`A` = 1 where there was depth to test); they are computed again here, so bundles written before them export too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..formats.exr import read_depth_exr
from ..formats.matte import write_matte_exr
from ..motion import frame_motion
from .options import ExportOptions
from .shot import Shot, read_depth_maps


def frame_mattes(shot: Shot) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(moving bool[N, H, W], score float32[N, H, W], tested bool[N, H, W]) at the map resolution."""
    near = read_depth_maps(shot)
    w2c = shot.world_to_camera()
    mattes = [frame_motion(shot.K, w2c, near, read_depth_exr(f.depth_path)[0], i)
              for i, f in enumerate(shot.bundle.frames)]
    return tuple(np.stack(m) for m in zip(*mattes))


def write(shot: Shot, folder: Path, options: ExportOptions) -> str:
    moving, score, tested = frame_mattes(shot)
    (folder / "mattes").mkdir()
    for i, f in enumerate(shot.frames):
        write_matte_exr(folder / "mattes" / f"{int(f):06d}.exr", moving[i], score[i], tested[i])
    (h, w) = shot.map_size
    return (f"mattes/: {len(shot.frames)} motion mattes at {w}x{h}; "
            f"{100 * moving.sum() / max(tested.sum(), 1):.2f} % of the pixels with depth moving")
