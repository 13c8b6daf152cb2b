"""Each window's cameras in the window's own frame, in closed form.

A "slot" is one real frame of one window. For every slot we want the camera-to-window rotation R,
the camera centre o (window units) and the focal length f (pixels, principal point at the image
centre). Two sources:

- rays (Plücker directions d and moments m = o x d): the map pixel -> d is a rotation composed with
  K^-1, so diag(f, f, 1) R^T d ~ (x, y, 1) for the centred pixel (x, y). That is a linear (DLT) system
  in the 9 entries of A = diag(f, f, 1) R^T: its null vector gives f from the row norms. With the focal
  fixed, R is a Kabsch fit of the directions, and o solves sum (I - d d^T) o = sum d x m, the
  least-squares intersection of the rays.
- points only (the ablation without rays): a DLT of the 3x4 projection P = A [I | -o] from the point
  map's 3D points and their pixels, with Hartley normalisation.

Everything is batched over slots with numpy; S slots, P sampled pixels each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import kabsch, project_to_rotation
from .robust import cauchy_weights

MIN_POINTS = 12  # valid points a slot needs for a DLT camera (6 is the minimum; noise wants more)


@dataclass
class SlotCameras:
    """Cameras of S slots in their windows' frames.

    rotation: float64[S, 3, 3] camera-to-window rotation; centre: float64[S, 3] window units;
    focal: float64[S] pixels, as each slot's data says (before any sharing).
    """

    rotation: np.ndarray
    centre: np.ndarray
    focal: np.ndarray


def _null_vectors(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Unit vector v minimising sum w |rows v|^2 per slot. rows: [S, R, n]; weights: [S, R] -> [S, n]."""
    normal = np.swapaxes(rows * weights[..., None], 1, 2) @ rows  # batched matmul: BLAS, unlike einsum
    _, vecs = np.linalg.eigh(normal)
    return vecs[..., 0]


def _dlt_rows(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Linear projection equations u = (a1.x)/(a3.x), v = (a2.x)/(a3.x) for every slot and pixel, as rows
    acting on the stacked [a1; a2; a3]. x: [S, P, k] rays or homogeneous points; q: [P, 2] pixels -> [S, 2P, 3k]."""
    s, p, k = x.shape
    rows = np.zeros((s, 2 * p, 3 * k))
    rows[:, :p, 0:k] = x
    rows[:, :p, 2 * k:] = -q[None, :, 0:1] * x
    rows[:, p:, k:2 * k] = x
    rows[:, p:, 2 * k:] = -q[None, :, 1:2] * x
    return rows


def _focal_rotation(a: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Split A ~ diag(f, f, 1) R^T (up to a signed factor) into (f [S], R [S, 3, 3]); A: [S, 3, 3]."""
    norms = np.linalg.norm(a, axis=2)
    f = 0.5 * (norms[:, 0] + norms[:, 1]) / norms[:, 2]
    rt = a / np.stack([f, f, np.ones_like(f)], axis=1)[:, :, None]
    rt /= norms[:, 2][:, None, None]
    rt *= np.sign(np.linalg.det(rt))[:, None, None]  # the null vector's sign is arbitrary; det R = +1
    return f * scale, np.swapaxes(project_to_rotation(rt), 1, 2)


def focal_from_rays(dirs: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Focal length per slot. dirs: [S, P, 3] unit rays; pixels: [P, 2] centred pixel coordinates."""
    scale = float(np.abs(pixels).max()) or 1.0
    q = pixels / scale
    rows = _dlt_rows(dirs, q)
    a = _null_vectors(rows, np.ones(rows.shape[:2])).reshape(len(dirs), 3, 3)
    return _focal_rotation(a, scale)[0]


def rotation_from_rays(dirs: np.ndarray, pixels: np.ndarray, focal: np.ndarray) -> np.ndarray:
    """Camera-to-window rotation per slot for known focal [S]: Kabsch of camera rays onto dirs."""
    cam = np.concatenate([pixels[None] / focal[:, None, None], np.ones((len(focal), len(pixels), 1))], axis=2)
    cam /= np.linalg.norm(cam, axis=2, keepdims=True)
    return kabsch(cam, dirs)


def centre_from_rays(dirs: np.ndarray, moments: np.ndarray) -> np.ndarray:
    """Least-squares intersection of the rays (d, m = o x d) of each slot. [S, P, 3] x2 -> [S, 3]."""
    p = dirs.shape[1]
    lhs = p * np.eye(3) - np.einsum("spi,spj->sij", dirs, dirs)
    rhs = np.cross(dirs, moments).sum(axis=1)
    return np.linalg.solve(lhs, rhs[..., None])[..., 0]


def cameras_from_points(points: np.ndarray, weights: np.ndarray, pixels: np.ndarray, steps: int = 3) -> SlotCameras:
    """DLT cameras from point maps, reweighted by reprojection error (Cauchy) against outliers.

    points: [S, P, 3] window frame; weights: [S, P] (0 = unusable); pixels: [P, 2] centred.
    """
    scale = float(np.abs(pixels).max()) or 1.0
    q = pixels / scale
    lacking = (weights > 0).sum(axis=1) < MIN_POINTS
    weights = np.where(lacking[:, None], 1.0, weights)  # placeholder so the batch solves; result set to nan
    wsum = weights.sum(axis=1, keepdims=True)
    mean = np.einsum("sp,spi->si", weights, points) / wsum
    spread = np.sqrt(np.einsum("sp,sp->s", weights, np.sum((points - mean[:, None]) ** 2, axis=2)) / wsum[:, 0])
    xn = (points - mean[:, None]) / spread[:, None, None]
    xh = np.concatenate([xn, np.ones(xn.shape[:2] + (1,))], axis=2)
    s, p, _ = points.shape
    rows = _dlt_rows(xh, q)
    robust = np.ones_like(weights)
    for _ in range(steps):
        w = weights * robust
        proj = _null_vectors(rows, np.concatenate([w, w], axis=1)).reshape(s, 3, 4)
        image = xh @ np.swapaxes(proj, 1, 2)
        with np.errstate(all="ignore"):
            error = np.linalg.norm(image[..., :2] / image[..., 2:3] - q[None], axis=2)
        error = np.where(np.isfinite(error) & (weights > 0), error, np.inf)
        typical = np.nanmedian(np.where(weights > 0, error, np.nan), axis=1, keepdims=True)
        robust = 1.0 / (1.0 + (error / np.maximum(2.5 * 1.4826 * typical, 1e-9)) ** 2)
    # Undo the normalisation: P_world = P_n T, T = [[I / spread, -mean / spread], [0, 1]].
    a = proj[:, :, :3] / spread[:, None, None]
    b = proj[:, :, 3] - np.einsum("sij,sj->si", a, mean)
    centre = -np.linalg.solve(a, b[..., None])[..., 0]
    focal, rotation = _focal_rotation(a, scale)
    rotation[lacking], centre[lacking], focal[lacking] = np.nan, np.nan, np.nan
    return SlotCameras(rotation=rotation, centre=centre, focal=focal)


def fuse_cameras(rays: SlotCameras, points: SlotCameras) -> SlotCameras:
    """Equal-weight average of the ray and point-map cameras of the same slots (chordal mean of
    rotations); slots whose point map had too few valid points keep the ray camera."""
    lacking = np.isnan(points.focal)
    both = SlotCameras(rotation=project_to_rotation(rays.rotation + np.where(lacking[:, None, None], rays.rotation,
                                                                             points.rotation)),
                       centre=0.5 * (rays.centre + np.where(lacking[:, None], rays.centre, points.centre)),
                       focal=0.5 * (rays.focal + np.where(lacking, rays.focal, points.focal)))
    return both


def focal_from_camera_points(points: np.ndarray, weights: np.ndarray, pixels: np.ndarray,
                             steps: int = 3) -> np.ndarray:
    """Focal length per slot from point maps in each slot's own camera frame (nan with too few points).

    The pixel of X is f (X/Z, Y/Z) from the image centre, so f = sum w q.r / sum w r.r with r = (X/Z, Y/Z):
    linear least squares, reweighted (Cauchy) on the pixel residual against outliers.
    points: [S, P, 3] camera frame; weights: [S, P] (0 = unusable); pixels: [P, 2] centred. Returns [S].
    """
    usable = (weights > 0) & (points[..., 2] > 0)
    r = points[..., :2] / np.where(usable, points[..., 2], 1.0)[..., None]
    robust = np.ones_like(weights)
    focal = np.zeros(len(points))
    for _ in range(steps):
        w = np.where(usable, weights * robust, 0.0)
        with np.errstate(all="ignore"):
            focal = np.einsum("sp,spi,pi->s", w, r, pixels) / np.einsum("sp,spi->s", w, r * r)
        error = np.linalg.norm(focal[:, None, None] * r - pixels[None], axis=2)
        robust = cauchy_weights(error, 1e-6, usable)
    return np.where(usable.sum(axis=1) >= MIN_POINTS, focal, np.nan)
