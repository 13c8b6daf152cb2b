"""Which pixels show moving things (the bundle's motion mattes and `moving` points, the mattes export): each
frame's depth checked against the other frames'.

A point is projected into other frames (offsets 1, 2, 3, 5, 8, 11, ... both ways); where it
lands in front of the surface that frame saw (by more than MOTION_TOLERANCE of that depth), that frame looked
through the place the point should be, so the point was not there then. A point that enough of the frames
which see its place contradict (MOTION_FRACTION) is moving; nearby frames may still agree, as a moving object
covers much of its own place a frame later. The depth compared is the nearest in a 3 x 3 neighbourhood, so
the edges of static foreground objects are not mistaken for motion. Only a place some other frame sees free
is evidence: an object that never uncovers its place in view stays.
"""

from __future__ import annotations

import cv2
import numpy as np

MOTION_TOLERANCE = 0.05  # relative depth difference that counts as "seen through"
# A point is moving when at least this fraction, and at least MOTION_MIN_VOTES, of the frames that see its place
# contradict it (measured on the procedural scenes with simulated predictions: tests/test_export.py).
MOTION_FRACTION = 0.25
MOTION_MIN_VOTES = 2


def nearest_depth(depth: np.ndarray) -> np.ndarray:
    """float32[H, W]: the nearest valid depth (> 0) in a 3 x 3 neighbourhood of depth [H, W] (inf = none)."""
    return cv2.erode(np.where(depth > 0, depth, np.inf).astype(np.float32), np.ones((3, 3), np.uint8))


def _neighbours(i: int, n: int) -> list[int]:
    """The frames frame i is checked against: offsets growing by half each step (1, 2, 3, 5, 8, 11, 17, ...)."""
    offsets = sorted({round(1.5 ** k) for k in range(int(np.log(max(n, 2)) / np.log(1.5)) + 2)})
    return [j for o in offsets for j in (i - o, i + o) if 0 <= j < n]


def motion_votes(K: np.ndarray, w2c: np.ndarray, depth: np.ndarray, xyz: np.ndarray,
                 frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(votes, checked) int32[P]: for the points xyz [P, 3] of frames `frame` [P], how many other frames
    contradict them and how many saw their place. K float64[N, 3, 3] and w2c float64[N, 4, 4] (world to OpenCV
    camera) are the N frames' cameras; depth float32[N, H, W] their nearest depth (nearest_depth)."""
    n, h, w = depth.shape
    votes = np.zeros(len(xyz), np.int32)
    checked = np.zeros(len(xyz), np.int32)
    for i in range(n):
        own = np.flatnonzero(frame == i)
        for j in _neighbours(i, n):
            pix, z = project(K[j], w2c[j], xyz[own])
            with np.errstate(invalid="ignore"):
                inside = (z > 0) & (pix[:, 0] >= 0) & (pix[:, 0] < w) & (pix[:, 1] >= 0) & (pix[:, 1] < h)
            idx = own[inside]
            seen = depth[j, pix[inside, 1].astype(int), pix[inside, 0].astype(int)]
            finite = np.isfinite(seen)
            checked[idx[finite]] += 1
            votes[idx[finite]] += z[inside][finite] < seen[finite] * (1 - MOTION_TOLERANCE)
    return votes, checked


def is_moving(votes: np.ndarray, checked: np.ndarray) -> np.ndarray:
    """bool[...]: enough of the frames that saw the place contradict it (MOTION_FRACTION, MOTION_MIN_VOTES)."""
    return (votes >= MOTION_MIN_VOTES) & (votes >= MOTION_FRACTION * checked)


def moving_points(K: np.ndarray, w2c: np.ndarray, depth: np.ndarray, xyz: np.ndarray,
                  frame: np.ndarray) -> np.ndarray:
    """bool[P]: the points xyz [P, 3] of frames `frame` [P] that the other frames' depth contradicts
    (arguments as motion_votes)."""
    return is_moving(*motion_votes(K, w2c, depth, xyz, frame))


def frame_motion(K: np.ndarray, w2c: np.ndarray, near: np.ndarray, depth: np.ndarray,
                 i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame i's motion matte: (moving bool[H, W], score float32[H, W], tested bool[H, W]), every pixel with depth
    (depth float32[H, W], frame i's planar depth, 0 = none) tested against the other frames. score = the fraction
    of the frames that saw the pixel's place and contradicted it (0 where none saw it); tested = the pixel had
    depth. K, w2c and near as motion_votes."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w]
    valid = depth > 0
    z = depth[valid].astype(np.float64)
    rays = np.stack([u[valid] + 0.5, v[valid] + 0.5, np.ones_like(z)], axis=1) @ np.linalg.inv(K[i]).T
    c2w = np.linalg.inv(w2c[i])
    xyz = (rays * z[:, None]) @ c2w[:3, :3].T + c2w[:3, 3]
    votes, checked = motion_votes(K, w2c, near, xyz, np.full(len(z), i))
    moving = np.zeros((h, w), bool)
    score = np.zeros((h, w), np.float32)
    moving[valid] = is_moving(votes, checked)
    score[valid] = votes / np.maximum(checked, 1)
    return moving, score, valid


def project(K: np.ndarray, world_to_camera: np.ndarray, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels float64[P, 2] and planar depths float64[P] of world points xyz [P, 3] in one camera."""
    cam = xyz @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        pix = (cam @ K.T)[:, :2] / z[:, None]
    return pix, z
