"""Per-frame depth from every window that sees the frame, point maps and disparity fused robustly.

Each window gives up to two depth estimates of a frame, both in world units:
  - from its point map: z = (R^T (X - o))_z in its own camera, times the window's scale;
  - from its disparity, mapped to depth by the window's own affine fit D = a / z + b against its
    point-map depths (all its frames together, reweighted against outliers).
The estimates are compared in log depth against their per-pixel median; an estimate further than
`threshold` robust deviations is dropped, the rest averaged with weights confidence / variance, where
each estimate's variance is its own typical deviation from the median on this frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .robust import cauchy_weights, median_of_valid

MIN_SIGMA = 0.002  # log-depth deviation below which estimates count as equally exact


@dataclass
class DisparityFit:
    """disparity ~ a / depth + b, trusted for depths in [near, far] (the fitted range, widened 2x)."""

    a: float = 0.0
    b: float = 0.0
    near: float = 0.0
    far: float = 0.0

    def depth(self, disparity: np.ndarray) -> np.ndarray:
        """Depth a / (D - b) where D is valid and the result lies in the trusted range; 0 elsewhere."""
        denom = disparity - self.b
        ok = (disparity > 0) & (denom > 0) & (self.a > 0)
        z = np.where(ok, self.a / np.where(ok, denom, 1.0), 0.0)
        return np.where((z >= self.near) & (z <= self.far), z, 0.0)


def fit_disparity(disparity: np.ndarray, depth: np.ndarray, weight: np.ndarray, steps: int = 4) -> DisparityFit:
    """Affine map from inverse depth to disparity, weighted and reweighted (Cauchy).

    disparity, depth, weight: [P] samples (weight 0 = unusable). An unusable fit maps nothing (a = 0).
    """
    use = (weight > 0) & (disparity > 0) & (depth > 0)
    if use.sum() < 3:
        return DisparityFit()
    x, y, w = 1.0 / depth[use], disparity[use], weight[use]
    design = np.stack([x, np.ones_like(x)], axis=1)
    robust = np.ones_like(w)
    a = b = 0.0
    for _ in range(steps):
        sw = np.sqrt(w * robust)
        a, b = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)[0]
        r = np.abs(design @ np.array([a, b]) - y) / np.maximum(np.abs(y), 1e-12)
        robust = cauchy_weights(r, 1e-6)
    return DisparityFit(float(a), float(b), 0.5 * float(depth[use].min()), 2.0 * float(depth[use].max()))


def fuse_depths(estimates: np.ndarray, weights: np.ndarray, threshold: float = 3.0,
                robust: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Fuse K depth estimates of one frame.

    estimates: float[K, H, W] (<= 0 = none); weights: float[K, H, W] confidences (0 = none).
    Returns (depth float32[H, W], 0 where nothing survived; confidence float32[H, W]).
    """
    valid = (estimates > 0) & (weights > 0)
    logd = np.log(np.where(valid, estimates, 1.0))
    count = valid.sum(axis=0)
    median = np.where(count > 0, median_of_valid(logd, valid), 0.0) if robust else \
        np.where(valid, logd, 0.0).sum(axis=0) / np.maximum(count, 1)
    dev = np.abs(logd - median)
    multi = valid & (count >= 2)
    sigma = np.array([_typical(dev[k][multi[k]]) for k in range(len(estimates))])
    keep = valid
    if robust:
        keep = valid & ((dev <= threshold * sigma[:, None, None]) | (count < 2))
    w = np.where(keep, weights / sigma[:, None, None] ** 2, 0.0)
    total = w.sum(axis=0)
    with np.errstate(all="ignore"):
        fused = np.where(total > 0, np.exp((w * logd).sum(axis=0) / total), 0.0)
        kept = keep.sum(axis=0)
        confidence = np.where(kept > 0, (np.where(keep, weights, 0).sum(axis=0) / np.maximum(kept, 1))
                              * kept / np.maximum(count, 1), 0.0)
    return fused.astype(np.float32), confidence.astype(np.float32)


def _typical(deviation: np.ndarray) -> float:
    """Robust standard deviation from absolute deviations (a strided subset is plenty); 1 if none."""
    if len(deviation) == 0:
        return 1.0
    return max(1.4826 * float(np.median(deviation[:: max(1, len(deviation) // 4096)])), MIN_SIGMA)
