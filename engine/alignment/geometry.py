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


def kabsch(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Rotation R minimising sum w |R src - dst|^2 for direction sets (no translation).

    src, dst: [..., P, 3]; weights: [..., P] or None. Returns [..., 3, 3].
    """
    w = np.ones(src.shape[:-1]) if weights is None else weights
    cov = np.einsum("...p,...pi,...pj->...ij", w, dst, src)
    return project_to_rotation(cov)


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None,
            with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising sum w |s R src + t - dst|^2 (Umeyama 1991).

    src, dst: [P, 3]; weights: [P] or None. Returns (s, R [3, 3], t [3]).
    """
    w = np.ones(len(src)) if weights is None else np.asarray(weights, float)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    r = u @ np.diag(d) @ vt
    var_s = float(w @ np.sum(xs**2, axis=1))
    s = float(sig @ d / var_s) if with_scale and var_s > 0 else 1.0
    return s, r, mu_d - s * r @ mu_s


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


def intrinsics(focal: np.ndarray, h: int, w: int) -> np.ndarray:
    """K [..., 3, 3] for focal lengths [...] in pixels, principal point at the image centre."""
    focal = np.asarray(focal, float)
    k = np.zeros(focal.shape + (3, 3))
    k[..., 0, 0] = focal
    k[..., 1, 1] = focal
    k[..., 0, 2] = w / 2.0
    k[..., 1, 2] = h / 2.0
    k[..., 2, 2] = 1.0
    return k
