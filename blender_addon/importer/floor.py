"""Level a scene on its dominant ground plane: RANSAC plane fit on the points (numpy only)."""

from __future__ import annotations

import numpy as np

from ..errors import FloorNotFound


def fit_floor(points: np.ndarray, max_tilt_deg: float = 45.0, iterations: int = 256,
              max_samples: int = 20000, seed: int = 0) -> np.ndarray:
    """Rigid transform float64[4, 4] that puts the dominant near-horizontal plane at z = 0 with normal +Z.

    points: float[P, 3] in Blender world (Z roughly up). Candidate planes tilted more than max_tilt_deg from
    horizontal are ignored, so a large wall cannot win over a smaller floor. The rotation is the smallest one
    that levels the plane, so the heading of the shot is kept.
    """
    pts = np.asarray(points, np.float64)
    if len(pts) < 3:
        raise FloorNotFound("floor fit needs at least 3 points", "import without floor fit")
    rng = np.random.default_rng(seed)
    if len(pts) > max_samples:
        pts = pts[rng.choice(len(pts), max_samples, replace=False)]
    centre = np.median(pts, axis=0)
    threshold = 0.01 * np.median(np.linalg.norm(pts - centre, axis=1))

    tri = pts[rng.integers(0, len(pts), size=(iterations, 3))]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(normals, axis=1)
    ok = length > 1e-12
    normals[ok] /= length[ok, None]
    ok &= np.abs(normals[:, 2]) >= np.cos(np.radians(max_tilt_deg))
    if not ok.any():
        raise FloorNotFound("no near-horizontal plane found in the points for the floor fit",
                            "import without floor fit")
    distances = np.abs(np.einsum("ij,kj->ik", normals[ok], pts) - np.sum(normals[ok] * tri[ok, 0], axis=1)[:, None])
    inliers = pts[distances[np.argmax(np.sum(distances < threshold, axis=1))] < threshold]

    # Least-squares refinement; the band then narrows to the inliers' own spread (3 robust sigmas), so points
    # of a wall meeting the floor do not tilt the fit.
    for _ in range(3):
        origin = inliers.mean(axis=0)
        normal = np.linalg.svd(inliers - origin, full_matrices=False)[2][2]  # direction of least spread
        residual = np.abs((pts - origin) @ normal)
        band = max(3 * 1.4826 * np.median(residual[residual < threshold]), 1e-6 * threshold)
        inliers = pts[residual < band]
    return level_on(origin, normal if normal[2] >= 0 else -normal)


def fit_plane(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares plane through float[P, 3] points: (a point on it, its unit normal), float64[3] each
    (the normal's sign is arbitrary). FloorNotFound for fewer than 3 points or points on a line."""
    pts = np.asarray(points, np.float64)
    if len(pts) < 3:
        raise FloorNotFound(f"a plane needs at least 3 points, {len(pts)} given", "select 3 or more points")
    centre = pts.mean(axis=0)
    _, spread, axes = np.linalg.svd(pts - centre, full_matrices=False)
    if spread[1] <= 1e-9 * max(spread[0], 1e-300):
        raise FloorNotFound("the points lie on a line (or on one spot), so they make no plane",
                            "select points spread over the floor")
    return centre, axes[2]


def level_on(origin: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Rigid transform float64[4, 4] putting the plane through origin (float[3]) with unit normal `normal` at
    z = 0, the normal turned to +Z by the smallest rotation (the shot's heading kept) and nothing moved in x, y
    but by that rotation."""
    normal = np.asarray(normal, np.float64)
    up = np.array([0.0, 0.0, 1.0])
    if np.dot(normal, up) < -1.0 + 1e-12:  # upside down: half a turn about x
        rotation = np.diag([1.0, -1.0, -1.0])
    else:
        rotation = _rotation_between(normal, up)
    transform = np.eye(4)
    transform[:3, :3] = rotation
    transform[2, 3] = -(rotation @ np.asarray(origin, np.float64))[2]
    return transform


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation float64[3, 3] taking unit vector a to unit vector b (a not opposite to b)."""
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    vx = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)
