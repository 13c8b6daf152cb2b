"""Pixel correspondences between frames of a clip: dense optical flow (OpenCV DIS), checked both ways.

A pixel q of frame i moves to q' = q + F_ij(q) in frame j. Where the flow back from j, read at q',
does not return to q within FB_TOLERANCE pixels (occlusion, a flow failure, the image border), the
match is dropped; so is one that Lucas-Kanade on q's own patch, started at q', does not follow there and back, or
ends more than FB_TOLERANCE from q' (`tracked`). LK's end point, fitted to the patch alone, is the match: it is
sharper than DIS's smoothed field. Flows are computed once per ordered pair of frames and the matches cached, since
overlapping windows ask for the same pairs. Frames larger than FLOW_SIDE pixels are matched at that
size (flow there is accurate to a few tenths of a pixel, and costs grow with the area). Smaller frames are
matched at their own size: enlarging them to FLOW_SIDE (tried) gave focal errors no better at 160x256, and made the
solve far more sensitive to its inputs while the motion fits stopped after six steps (a GeometryCrafter bundle through
torch and ONNX Runtime: cameras 3.3e-3 of the path apart instead of 4e-5); with the fits converged that
sensitivity is gone (cameras 1.1e-5 of the path apart enlarged, 4.9e-5 not: docs/alignment.md), so enlarging is
worth measuring again.
"""

from __future__ import annotations

import cv2
import numpy as np

FB_TOLERANCE = 1.0  # pixels (of the frames the flow sees): disagreement above which a match is dropped
LK_WINDOW, LK_LEVELS = 11, 2  # the Lucas-Kanade check of DIS's matches: patch side (pixels), pyramid levels
LK_TOLERANCE = 0.5  # pixels: LK's own round trip from DIS's match and back must end this close to the start
LK_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01)
FLOW_SIDE = 512  # longest side, pixels, of the frames the flow is computed on (larger ones shrunk to it)


class FlowMatcher:
    """Matches of sampled pixels between frames of `rgb` (uint8[N, H, W, 3]).

    v, u: int[P] the sampled pixels (rows, columns), the same for every frame.
    """

    def __init__(self, rgb: np.ndarray, v: np.ndarray, u: np.ndarray):
        self._rgb = rgb
        self.v, self.u = v, u
        self._shrink = min(1.0, FLOW_SIDE / max(rgb.shape[1:3]))
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _image(self, i: int) -> np.ndarray:
        gray = cv2.cvtColor(np.ascontiguousarray(self._rgb[i]), cv2.COLOR_RGB2GRAY)
        if self._shrink < 1.0:
            gray = cv2.resize(gray, None, fx=self._shrink, fy=self._shrink, interpolation=cv2.INTER_AREA)
        return gray

    def match(self, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Where the sampled pixels of frame i are in frame j: (x, y float64[P, 2] in pixel-index units,
        i.e. column and row, integers at pixel centres; ok bool[P], False where the check failed)."""
        key = (i, j)
        if key not in self._cache:
            a, b = self._image(i), self._image(j)
            forward = self._flow.calc(a, b, None)
            backward = self._flow.calc(b, a, None)
            h, w = a.shape
            k = self._shrink  # pixel-index coordinates of the flow's frames: (index + 0.5) * k - 0.5
            u0, v0 = (self.u + 0.5) * k - 0.5, (self.v + 0.5) * k - 0.5
            step = bilinear(forward, np.stack([u0, v0], axis=1))
            x, y = u0 + step[:, 0], v0 + step[:, 1]
            back = cv2.remap(backward, x.astype(np.float32)[None], y.astype(np.float32)[None], cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(np.inf, np.inf))[0]
            round_trip = np.hypot(x + back[:, 0] - u0, y + back[:, 1] - v0)
            kept, refined = tracked(a, b, np.stack([u0, v0], 1), np.stack([x, y], 1))
            x, y = refined[:, 0].astype(np.float64), refined[:, 1].astype(np.float64)  # LK's sharper end points
            inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
            ok = inside & (round_trip < FB_TOLERANCE) & kept
            target = np.stack([(x + 0.5) / k - 0.5, (y + 0.5) / k - 0.5], axis=1)
            self._cache[key] = (target, ok)
        return self._cache[key]


def tracked(a: np.ndarray, b: np.ndarray, start: np.ndarray, match: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lucas-Kanade on each point's own patch, started at DIS's match: (kept bool[P], where float32[P, 2]).
    kept: LK follows the point from frame a to b and back to within LK_TOLERANCE of its start, and ends within
    FB_TOLERANCE of DIS's match (two trackers agree); where: LK's end point in b. a, b: uint8[H, W] grey frames;
    start, match: float[P, 2] (x, y) of the points in a and DIS's match in b.

    DIS's flow is smoothed over the image: on a fast pan it flattens the flow's growth towards the edges (the
    curvature the focal is read from) and, past about 30 pixels of motion at 256 pixels wide, partly or wholly
    fails, often alike both ways, so its own round trip passes (docs/alignment.md, step 3b). A second tracker
    that sees only the point's patch drops most of those matches, and its end point, fitted to that patch
    alone, is the sharper match (the pan's path error 5.5 -> 3.1 %: docs/alignment.md, "Converged motions")."""
    start, match = start.astype(np.float32), match.astype(np.float32)
    options = dict(winSize=(LK_WINDOW, LK_WINDOW), maxLevel=LK_LEVELS, criteria=LK_CRITERIA,
                   flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
    found, ahead, _ = cv2.calcOpticalFlowPyrLK(a, b, start, match.copy(), **options)
    back, behind, _ = cv2.calcOpticalFlowPyrLK(b, a, found, start.copy(), **options)
    kept = ((ahead[:, 0] == 1) & (behind[:, 0] == 1) & (np.hypot(*(back - start).T) < LK_TOLERANCE)
            & (np.hypot(*(found - match).T) < FB_TOLERANCE))
    return kept, found


def bilinear(maps: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Sample maps [H, W, C] at positions xy [P, 2] (column, row; inside the image) -> [P, C]."""
    h, w = maps.shape[:2]
    x = np.clip(xy[:, 0], 0, w - 1)
    y = np.clip(xy[:, 1], 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2) if w > 1 else np.zeros(len(x), np.int64)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2) if h > 1 else np.zeros(len(y), np.int64)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    return ((1 - fy) * ((1 - fx) * maps[y0, x0] + fx * maps[y0, x1])
            + fy * ((1 - fx) * maps[y1, x0] + fx * maps[y1, x1]))
