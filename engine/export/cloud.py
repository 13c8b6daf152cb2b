"""The merged static point cloud of a shot: every frame's points in one cloud, ready to seed Gaussian
splatting or a COLMAP model.

From the bundle's per-frame point clouds (world xyz, sRGB colour, confidence):
1. confidence filter: points below the `confidence_quantile` of all confidences are dropped;
2. moving points excluded (engine/motion.py);
3. voxel downsampling: points in one voxel merge into their confidence-weighted mean.

Each merged point keeps its observations: for every frame that contributed, the pixel of its most confident
point there (what COLMAP calls the track).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..motion import moving_points, project
from .options import CloudOptions
from .shot import Shot, read_depth_maps

AUTO_VOXEL_PIXELS = 2.0  # the automatic voxel: this many pixels' footprint at the median depth


@dataclass
class MergedCloud:
    """P merged points and their M observations.

    xyz: float32[P, 3] world (OpenCV axes, world = the first camera); rgb: uint8[P, 3] sRGB;
    confidence: float32[P] mean confidence of the merged points.
    obs_point: int64[M] the merged point of each observation; obs_frame: int64[M] the frame (index into the
    shot's frames); obs_xy: float64[M, 2] its pixel in the bundle's maps (centres at +0.5).
    voxel_size: the voxel edge used; counts: how many points each step kept.
    """

    xyz: np.ndarray
    rgb: np.ndarray
    confidence: np.ndarray
    obs_point: np.ndarray
    obs_frame: np.ndarray
    obs_xy: np.ndarray
    voxel_size: float
    counts: dict = field(default_factory=dict)

    def describe(self) -> str:
        """One line: how many points each step of the merge kept."""
        c = self.counts
        return (f"{c['merged']} points (voxel {self.voxel_size:.3g}) from {c['input']} frame points; dropped "
                f"{c['input'] - c['confident']} below the confidence quantile, {c['confident'] - c['static']} moving")


def merge_static_cloud(shot: Shot, options: CloudOptions | None = None) -> MergedCloud:
    """The merged static cloud of `shot` (see the module docstring)."""
    options = options or CloudOptions()
    xyz, rgb, conf, frame = read_frame_points(shot)
    counts = {"input": len(xyz)}
    if options.confidence_quantile > 0:
        keep = conf >= np.quantile(conf, options.confidence_quantile)
        xyz, rgb, conf, frame = xyz[keep], rgb[keep], conf[keep], frame[keep]
    counts["confident"] = len(xyz)
    depth = read_depth_maps(shot)
    if not options.keep_moving:
        keep = ~moving_points(shot.K, shot.world_to_camera(), depth, xyz, frame)
        xyz, rgb, conf, frame = xyz[keep], rgb[keep], conf[keep], frame[keep]
    counts["static"] = len(xyz)
    if len(xyz) == 0:
        raise InputError("no point of the bundle is left after the confidence and motion filters",
                         "lower --confidence-quantile or pass --keep-moving")
    voxel = options.voxel_size or _auto_voxel(shot, depth)
    cloud = _voxel_merge(shot, xyz, rgb, conf, frame, voxel)
    cloud.counts = {**counts, "merged": len(cloud.xyz)}
    return cloud


def read_frame_points(shot: Shot) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every frame's points: xyz float64[P, 3] world, rgb uint8[P, 3], confidence float64[P], frame int64[P]."""
    parts = [shot.bundle.points(i) for i in range(len(shot.frames))]
    if sum(len(p) for p in parts) == 0:
        raise InputError(f"the bundle {shot.bundle.root} holds no points", "re-run align with a lower --min-confidence")
    pts = np.concatenate(parts)
    xyz = np.stack([pts["x"], pts["y"], pts["z"]], axis=1).astype(np.float64)
    rgb = np.stack([pts["red"], pts["green"], pts["blue"]], axis=1)
    frame = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    return xyz, rgb, pts["confidence"].astype(np.float64), frame


def _auto_voxel(shot: Shot, depth: np.ndarray) -> float:
    finite = depth[:, ::4, ::4]
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        raise InputError(f"the bundle {shot.bundle.root} holds no valid depth", "re-run the engine on the clip")
    return float(AUTO_VOXEL_PIXELS * np.median(finite) / np.median(shot.K[:, 0, 0]))


def _voxel_merge(shot: Shot, xyz, rgb, conf, frame, voxel: float) -> MergedCloud:
    keys = np.floor(xyz / voxel).astype(np.int64)
    keys -= keys.min(axis=0)
    span = keys.max(axis=0) + 1
    if float(span[0]) * float(span[1]) * float(span[2]) >= 2.0 ** 62:
        raise InputError(f"the voxel size {voxel:.3g} is too small for a cloud {np.ptp(xyz, axis=0)} across",
                         "pass a larger --voxel-size (0 = automatic)")
    flat = (keys[:, 0] * span[1] + keys[:, 1]) * span[2] + keys[:, 2]
    _, point = np.unique(flat, return_inverse=True)
    point = point.ravel()
    p = int(point.max()) + 1
    weight = np.bincount(point, conf, p)
    merged = np.stack([np.bincount(point, conf * xyz[:, k], p) for k in range(3)], axis=1) / weight[:, None]
    colour = np.stack([np.bincount(point, conf * rgb[:, k], p) for k in range(3)], axis=1) / weight[:, None]
    mean_conf = weight / np.bincount(point, minlength=p)

    # One observation per (merged point, frame): the most confident contributing point.
    order = np.lexsort((-conf, frame, point))
    first = np.ones(len(order), bool)
    first[1:] = (point[order][1:] != point[order][:-1]) | (frame[order][1:] != frame[order][:-1])
    chosen = order[first]
    obs_frame = frame[chosen]
    obs_xy = np.empty((len(chosen), 2))
    w2c = shot.world_to_camera()
    for i in np.unique(obs_frame):
        rows = np.flatnonzero(obs_frame == i)
        obs_xy[rows], _ = project(shot.K[i], w2c[i], xyz[chosen[rows]])
    return MergedCloud(xyz=merged.astype(np.float32), rgb=np.clip(np.round(colour), 0, 255).astype(np.uint8),
                       confidence=mean_conf.astype(np.float32), obs_point=point[chosen], obs_frame=obs_frame,
                       obs_xy=obs_xy, voxel_size=voxel)
