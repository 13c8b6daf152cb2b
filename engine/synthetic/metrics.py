"""Scores of a reconstruction against ground truth, following MonST3R's evaluation protocol.

- Depth: one median scale for the whole sequence (scale-invariant per sequence, not per frame), then
  Abs Rel = mean |d - d_gt| / d_gt and delta<1.25 = share of pixels with max(d/d_gt, d_gt/d) < 1.25,
  over pixels valid in both (ground truth finite, prediction > 0).
- Cameras: one Sim(3) (Umeyama) maps predicted camera centres onto the true ones. ATE = RMS centre error
  (absolute, scene units of the ground truth, and as % of the true trajectory length). RPE between
  consecutive frames after that alignment: translation RMS (units, and % of the mean step) and mean
  rotation error in degrees.
- Focal: mean relative error of the focal length over frames.
- Centre error at the depth's scale (ours, for shots that barely travel, where the Sim(3) of ATE may shrink a
  noisy track to a point): the centres scaled by the depth's median scale, turned by the mean rotation
  between the predicted and true cameras, centred on the true track's mean; RMS error in scene units.
"""

from __future__ import annotations

import numpy as np

from ..alignment.geometry import project_to_rotation, rotation_angle_deg, umeyama
from ..formats.bundle import Reconstruction
from .groundtruth import GroundTruth


def depth_metrics(depth: np.ndarray, gt_depth: np.ndarray) -> dict[str, float]:
    """depth, gt_depth: [N, H, W]; depth 0 = no prediction, gt inf = sky."""
    valid = np.isfinite(gt_depth) & (gt_depth > 0) & (depth > 0)
    pred, true = depth[valid].astype(np.float64), gt_depth[valid].astype(np.float64)
    pred = pred * np.median(true) / np.median(pred)
    ratio = np.maximum(pred / true, true / pred)
    return {
        "abs_rel": float(np.mean(np.abs(pred - true) / true)),
        "delta_1.25": float(np.mean(ratio < 1.25)),
        "depth_coverage": float(valid.sum() / max(1, (np.isfinite(gt_depth) & (gt_depth > 0)).sum())),
    }


def camera_metrics(c2w: np.ndarray, gt_c2w: np.ndarray) -> dict[str, float]:
    """c2w, gt_c2w: [N, 4, 4] camera-to-world poses (any world frames; one Sim(3) relates them)."""
    centres, gt_centres = c2w[:, :3, 3], gt_c2w[:, :3, 3]
    steps = np.linalg.norm(np.diff(gt_centres, axis=0), axis=1)
    length = float(steps.sum())
    if len(centres) >= 3 and np.ptp(centres, axis=0).max() > 0:
        s, r, t = umeyama(centres, gt_centres)
    else:  # too few or coincident centres for a similarity: align rotation and position of frame 0 only
        s, r = 1.0, gt_c2w[0, :3, :3] @ c2w[0, :3, :3].T
        t = gt_centres[0] - r @ centres[0]
    aligned = np.tile(np.eye(4), (len(c2w), 1, 1))
    aligned[:, :3, :3] = r @ c2w[:, :3, :3]
    aligned[:, :3, 3] = s * centres @ r.T + t
    ate = float(np.sqrt(np.mean(np.sum((aligned[:, :3, 3] - gt_centres) ** 2, axis=1))))
    out = {"ate": ate, "ate_percent": 100.0 * ate / length if length > 0 else float("nan"),
           "trajectory_length": length}
    if len(c2w) > 1:
        rel_pred = np.linalg.inv(aligned[:-1]) @ aligned[1:]
        rel_true = np.linalg.inv(gt_c2w[:-1]) @ gt_c2w[1:]
        err = np.linalg.inv(rel_true) @ rel_pred
        rpe_t = float(np.sqrt(np.mean(np.sum(err[:, :3, 3] ** 2, axis=1))))
        out.update({
            "rpe_trans": rpe_t,
            "rpe_trans_percent": 100.0 * rpe_t / float(steps.mean()) if steps.mean() > 0 else float("nan"),
            "rpe_rot_deg": float(np.mean(rotation_angle_deg(err[:, :3, :3]))),
        })
    return out


def centre_error_at_depth_scale(recon: Reconstruction, gt: GroundTruth) -> float:
    """RMS camera centre error (scene units) with the scale of the depth and the rotation of the cameras:
    nothing fitted to the centres themselves, so a still track is judged by how far the true one moves."""
    valid = np.isfinite(gt.depth) & (gt.depth > 0) & (recon.depth > 0)
    scale = float(np.median(gt.depth[valid]) / np.median(recon.depth[valid]))
    r = project_to_rotation(np.sum(gt.camera_to_world[:, :3, :3] @ np.swapaxes(recon.camera_to_world[:, :3, :3],
                                                                               1, 2), axis=0))
    centres, gt_centres = recon.camera_to_world[:, :3, 3], gt.camera_to_world[:, :3, 3]
    moved = scale * (centres - centres.mean(axis=0)) @ r.T
    return float(np.sqrt(np.mean(np.sum((moved - (gt_centres - gt_centres.mean(axis=0))) ** 2, axis=1))))


def focal_error(k: np.ndarray, gt_k: np.ndarray) -> float:
    """Mean relative error of fx and fy over frames. k, gt_k: [N, 3, 3]."""
    f = k[:, [0, 1], [0, 1]]
    f_true = gt_k[:, [0, 1], [0, 1]]
    return float(np.mean(np.abs(f - f_true) / f_true))


def evaluate(recon: Reconstruction, gt: GroundTruth) -> dict[str, float]:
    """All metrics of a reconstruction of the whole sequence `gt` (frames in the same order)."""
    if recon.depth.shape != gt.depth.shape:
        raise ValueError(f"reconstruction depth {recon.depth.shape} does not match ground truth {gt.depth.shape}")
    return {**depth_metrics(recon.depth, gt.depth), **camera_metrics(recon.camera_to_world, gt.camera_to_world),
            "focal_error": focal_error(recon.K, gt.K), "centre_error": centre_error_at_depth_scale(recon, gt)}
