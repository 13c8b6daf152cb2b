"""Small closed-form geometry shared by the aligner, the baseline and the metrics (numpy, batched)."""

from __future__ import annotations

import numpy as np


def project_to_rotation(m: np.ndarray) -> np.ndarray:
    """Nearest rotation (Frobenius) to each 3x3 matrix. m: [..., 3, 3] -> [..., 3, 3] with det +1."""
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    return u @ vt


def axis_angle_to_rotation(axis_angle: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] of rotation vectors [..., 3] (Rodrigues; angle = norm, radians)."""
    angle = np.linalg.norm(axis_angle, axis=-1)[..., None, None]
    k = axis_angle / np.where(angle[..., 0] > 0, angle[..., 0], 1.0)
    kx = np.zeros(axis_angle.shape[:-1] + (3, 3))
    kx[..., 0, 1], kx[..., 0, 2], kx[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    kx[..., 1, 0], kx[..., 2, 0], kx[..., 2, 1] = k[..., 2], -k[..., 1], k[..., 0]
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def kabsch(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Rotation R minimising sum w |R src - dst|^2 for direction sets (no translation).

    src, dst: [..., P, 3]; weights: [..., P] or None. Returns [..., 3, 3].
    """
    w = np.ones(src.shape[:-1]) if weights is None else weights
    cov = np.einsum("...p,...pi,...pj->...ij", w, dst, src)
    return project_to_rotation(cov)


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None,
            with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising sum w |s R src + t - dst|^2 (Umeyama 1991); with_scale=False: rigid.

    src, dst: [..., P, 3]; weights: [..., P] or None. Returns (s, R [..., 3, 3], t [..., 3]); s is a
    float for a single set of points, an array [...] for a batch.
    """
    w = np.ones(src.shape[:-1]) if weights is None else np.asarray(weights, float)
    w = w / w.sum(axis=-1, keepdims=True)
    mu_s, mu_d = np.einsum("...p,...pi->...i", w, src), np.einsum("...p,...pi->...i", w, dst)
    xs, xd = src - mu_s[..., None, :], dst - mu_d[..., None, :]
    cov = np.einsum("...p,...pi,...pj->...ij", w, xd, xs)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(sig.shape)
    sign = np.sign(np.linalg.det(u @ vt))
    d[..., 2] = np.where(sign == 0, 1.0, sign)
    r = (u * d[..., None, :]) @ vt
    var_s = np.einsum("...p,...p->...", w, np.sum(xs**2, axis=-1))
    s = np.where(var_s > 0, np.sum(sig * d, axis=-1) / np.where(var_s > 0, var_s, 1.0), 1.0) if with_scale \
        else np.ones(var_s.shape)
    t = mu_d - s[..., None] * np.einsum("...ij,...j->...i", r, mu_s)
    return (float(s) if s.ndim == 0 else s), r, t


def rotation_angle_deg(r: np.ndarray) -> np.ndarray:
    """Angle of each rotation [..., 3, 3] in degrees."""
    c = (np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def pixel_grid(h: int, w: int, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixel indices (v, u) of every step-th pixel, each int[h', w']."""
    v, u = np.mgrid[step // 2:h:step, step // 2:w:step]
    return v, u


def centred_pixels(v: np.ndarray, u: np.ndarray, h: int, w: int) -> np.ndarray:
    """Pixel centres relative to the image centre (principal point), float64[..., 2] = (x, y)."""
    return np.stack([u + 0.5 - w / 2.0, v + 0.5 - h / 2.0], axis=-1).astype(np.float64)


def sample_pixels(h: int, w: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A regular grid of about `count` pixels: (v int[P], u int[P], centred pixels float64[P, 2])."""
    step = max(1, int(round(np.sqrt(h * w / count))))
    v, u = (a.ravel() for a in pixel_grid(h, w, step))
    return v, u, centred_pixels(v, u, h, w)


def intrinsics(focal: np.ndarray, h: int, w: int, principal: np.ndarray | None = None) -> np.ndarray:
    """K [..., 3, 3] for focal lengths [...] in pixels, principal point (x, y) in pixels (default the centre)."""
    focal = np.asarray(focal, float)
    k = np.zeros(focal.shape + (3, 3))
    k[..., 0, 0] = focal
    k[..., 1, 1] = focal
    k[..., 0, 2], k[..., 1, 2] = (w / 2.0, h / 2.0) if principal is None else principal
    k[..., 2, 2] = 1.0
    return k
