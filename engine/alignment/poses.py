"""One similarity per window (window frame -> world), solved jointly over all overlapping windows.

Windows that share a frame see the same camera and the same pixels, so for every such pair of slots
(a in window g, b in window h, the same frame):
  rotation:  R_g R_a = R_h R_b                          (camera rotations from the rays)
  points:    s_g R_g X_a + t_g = s_h R_h X_b + t_h      (the same pixel's point, and the camera centre)
The rotations are averaged first (linear chordal averaging, one sparse solve), then the scales from
depth ratios in the log domain, then the translations (a weighted graph Laplacian). Each is iteratively
reweighted (Cauchy) so that a window that disagrees with its neighbours loses its say; point residuals
are divided by the point's depth so that near and far points count alike (and, for the translations, by
the share of an error that shows in them: a link nothing else checks is not judged).
Windows that share no frame (stride >= window length) are tied by their adjacent frames instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.linalg import cho_solve_banded, cholesky_banded

from .geometry import project_to_rotation
from .robust import cauchy_weights, median_of_valid

IRLS_STEPS = 4
STEP_SPAN = 16  # frames over which the smoothing measures the camera's typical step
SMOOTHING_GRID = np.logspace(-4, 6, 41)  # smoothing strengths tried by track_smoothing
MIN_WINDOW_WEIGHT = 0.01  # a disagreeing window keeps a little say, so that every frame stays covered
TRIPOD_MIN_TURN = 0.01  # radians (0.6 degrees): a lever arm is fitted along the directions the shot turns by more
MIN_REDUNDANCY = 1e-6  # a sample whose residual shows less of its own error than this cannot be judged by it


@dataclass
class SlotPairs:
    """Pairs of slots (a, b) that see the same frame (or adjacent frames) from windows g < h.

    a, b: int64[M] slot indices; adjacent: bool[M], True where the frames differ by one.
    """

    a: np.ndarray
    b: np.ndarray
    adjacent: np.ndarray


@dataclass
class WindowPoses:
    """float64 rotation [G, 3, 3], scale [G], translation [G, 3]: window frame -> world; weight [G] in (0, 1]."""

    rotation: np.ndarray
    scale: np.ndarray
    translation: np.ndarray
    weight: np.ndarray


def slot_pairs(slot_window: np.ndarray, slot_frame: np.ndarray, neighbours: int = 3) -> SlotPairs:
    """Pairs of slots of the same frame, each slot with up to `neighbours` later windows."""
    order = np.lexsort((slot_window, slot_frame))
    a_list, b_list = [], []
    frames = slot_frame[order]
    bounds = np.flatnonzero(np.diff(frames)) + 1
    for group in np.split(order, bounds):
        for k in range(1, neighbours + 1):
            a_list.append(group[:-k])
            b_list.append(group[k:])
    a = np.concatenate(a_list) if a_list else np.zeros(0, np.int64)
    b = np.concatenate(b_list) if b_list else np.zeros(0, np.int64)
    adjacent = np.zeros(len(a), bool)
    # Windows g and g+1 without a shared frame: tie the last slot of g to the first of g+1.
    num_windows = int(slot_window.max()) + 1
    shared = np.zeros(num_windows, bool)
    shared[np.minimum(slot_window[a], slot_window[b])[slot_window[b] == slot_window[a] + 1]] = True
    extra_a, extra_b = [], []
    for g in np.flatnonzero(~shared[:-1]):
        extra_a.append(np.flatnonzero(slot_window == g)[np.argmax(slot_frame[slot_window == g])])
        extra_b.append(np.flatnonzero(slot_window == g + 1)[np.argmin(slot_frame[slot_window == g + 1])])
    if extra_a:
        a = np.concatenate([a, extra_a])
        b = np.concatenate([b, extra_b])
        adjacent = np.concatenate([adjacent, np.ones(len(extra_a), bool)])
    return SlotPairs(a=a.astype(np.int64), b=b.astype(np.int64), adjacent=adjacent)


def average_rotations(rel: np.ndarray, g: np.ndarray, h: np.ndarray, num_nodes: int, prior: np.ndarray,
                      anchors: np.ndarray, robust: bool = True) -> np.ndarray:
    """Rotations R_n of graph nodes from relative rotations rel_k ~ R_g^T R_h (linear chordal averaging,
    one sparse solve per reweighting, Cauchy-reweighted). Nodes in `anchors` are fixed to the identity;
    every connected part of the graph needs one. rel: [K, 3, 3]; g, h: int[K]; prior: [K] edge weights.
    Returns float64[num_nodes, 3, 3].
    """
    k = len(rel)
    anchors = np.asarray(anchors, np.int64)
    # Unknowns Z_n = R_n^T (3 x 3 each, 3 right-hand sides); rows Z_h - rel^T Z_g = 0 and Z_anchor = I.
    rows = np.concatenate([np.repeat(np.arange(3 * k), 3), np.repeat(np.arange(3 * k), 3),
                           3 * k + np.arange(3 * len(anchors))])
    cols_h = (3 * h[:, None, None] + np.arange(3)[None, None, :]).repeat(3, axis=1)
    cols_g = (3 * g[:, None, None] + np.arange(3)[None, None, :]).repeat(3, axis=1)
    vals_h = np.broadcast_to(np.eye(3), (k, 3, 3))
    vals_g = -np.swapaxes(rel, 1, 2)
    cols = np.concatenate([cols_h.ravel(), cols_g.ravel(), (3 * anchors[:, None] + np.arange(3)).ravel()])
    vals = np.concatenate([vals_h.ravel(), vals_g.ravel(), np.ones(3 * len(anchors))])
    a = sp.csr_matrix((vals, (rows, cols)), shape=(3 * k + 3 * len(anchors), 3 * num_nodes))
    rhs = np.zeros((3 * k + 3 * len(anchors), 3))
    rhs[3 * k:] = np.tile(np.eye(3), (len(anchors), 1))
    weight = np.ones(k)
    for _ in range(IRLS_STEPS if robust else 1):
        row_w = np.concatenate([np.repeat(prior * weight, 3), np.full(3 * len(anchors), float(k))])
        aw = a.multiply(row_w[:, None]).tocsr()
        z = spla.spsolve((a.T @ aw).tocsc(), a.T @ (rhs * row_w[:, None]))
        z = np.asarray(z).reshape(num_nodes, 3, 3)
        residual = np.linalg.norm(z[h] - np.swapaxes(rel, 1, 2) @ z[g], axis=(1, 2))
        weight = cauchy_weights(residual, 1e-4)
    return project_to_rotation(np.swapaxes(z, 1, 2))


def window_rotations(slot_rotation: np.ndarray, slot_window: np.ndarray, pairs: SlotPairs, num_windows: int,
                     window_weight: np.ndarray, robust: bool = True) -> np.ndarray:
    """Rotation of each window frame in the world (= window 0's frame). Returns float64[G, 3, 3].

    window_weight: [G] how much each window is trusted (from an earlier translation solve, or ones).
    """
    if num_windows == 1:
        return np.eye(3)[None]
    ga, gb = slot_window[pairs.a], slot_window[pairs.b]
    key = ga * num_windows + gb
    keys, inverse = np.unique(key, return_inverse=True)
    # Relative rotation R_g^T R_h = R_a R_b^T, averaged over the frames g and h share.
    rel = np.zeros((len(keys), 3, 3))
    np.add.at(rel, inverse, slot_rotation[pairs.a] @ np.swapaxes(slot_rotation[pairs.b], 1, 2))
    rel = project_to_rotation(rel)
    g, h = keys // num_windows, keys % num_windows
    return average_rotations(rel, g, h, num_windows, window_weight[g] * window_weight[h], np.zeros(1, np.int64),
                             robust)


def window_scales(depth_a: np.ndarray, depth_b: np.ndarray, usable: np.ndarray, ga: np.ndarray, gb: np.ndarray,
                  window_weight: np.ndarray, robust: bool = True) -> np.ndarray:
    """Scale of every window from the depth ratios of the pixels its slots share with other windows.

    The same pixel seen by windows g and h has world depth s_g z_a = s_h z_b, so each slot pair gives
    log s_h - log s_g = median log(z_a / z_b). Solved in the log domain (window 0 has scale 1), which
    has no trivial solution: unlike a least-squares fit of the points, it cannot shrink the scales.
    depth_a, depth_b, usable: [M, P] own-camera depths of the paired slots' samples; window_weight: [G].
    Returns float64[G].
    """
    has = usable.any(axis=1)
    ratio = np.log(np.where(usable, depth_a, 1.0)) - np.log(np.where(usable, depth_b, 1.0))
    log_ratio = median_of_valid(ratio, usable, axis=1)[has]
    count = usable.sum(axis=1)[has]
    g, h = ga[has], gb[has]
    pair_w = np.sqrt(count.astype(float)) * window_weight[g] * window_weight[h]
    num_windows = len(window_weight)
    m = len(log_ratio)
    design = np.zeros((m + 1, num_windows))
    design[np.arange(m), h] = 1.0
    design[np.arange(m), g] -= 1.0
    design[m, 0] = 1.0
    target = np.concatenate([log_ratio, [0.0]])
    robust_w = np.ones(m)
    for _ in range(IRLS_STEPS if robust else 1):
        sw = np.sqrt(np.concatenate([pair_w * robust_w, [pair_w.sum()]]))
        log_s = np.linalg.lstsq(design * sw[:, None], target * sw, rcond=None)[0]
        robust_w = cauchy_weights(np.abs(design[:m] @ log_s - log_ratio), 1e-4)
    return np.exp(log_s)


def window_translations(points_a: np.ndarray, points_b: np.ndarray, weight: np.ndarray, depth: np.ndarray,
                        ga: np.ndarray, gb: np.ndarray, rotation: np.ndarray, scale: np.ndarray,
                        robust: bool = True, anchors: np.ndarray = np.zeros(1, np.int64)) -> WindowPoses:
    """Translation of every window, given its rotation and scale, and how much each window agrees.

    points_a, points_b: float64[M, P, 3] the same pixels' points (and camera centres) in windows ga[m]
    and gb[m] (window frames and units); weight: [M, P] (0 = unusable); depth: [M, P] world depth of
    each sample, to make residuals relative. Minimises sum w |s_g R_g X_a + t_g - s_h R_h X_b - t_h|^2
    / depth^2: a weighted graph Laplacian in t, one small dense solve per reweighting. The windows in
    `anchors` keep translation 0 (one per connected part; the same solve places slots within windows).
    """
    num_windows = len(rotation)
    gap = (scale[ga, None, None] * (points_a @ np.swapaxes(rotation[ga], 1, 2))
           - scale[gb, None, None] * (points_b @ np.swapaxes(rotation[gb], 1, 2)))
    norm = 1.0 / np.maximum(np.abs(depth), 1e-12)
    usable = weight > 0
    sample_w = weight * norm**2
    window_w = np.ones(num_windows)
    t = np.zeros((num_windows, 3))
    for _ in range(IRLS_STEPS if robust else 1):
        w = sample_w * (window_w[ga] * window_w[gb])[:, None]
        pair_w = w.sum(axis=1)
        pair_gap = np.einsum("mp,mpi->mi", w, gap)
        laplacian = np.zeros((num_windows, num_windows))
        np.add.at(laplacian, (ga, ga), pair_w)
        np.add.at(laplacian, (gb, gb), pair_w)
        np.add.at(laplacian, (ga, gb), -pair_w)
        np.add.at(laplacian, (gb, ga), -pair_w)
        rhs = np.zeros((num_windows, 3))
        np.add.at(rhs, ga, -pair_gap)
        np.add.at(rhs, gb, pair_gap)
        laplacian[anchors, anchors] += laplacian.trace() + 1.0  # gauge: the anchors keep translation 0
        inverse = np.linalg.inv(laplacian)
        t = inverse @ rhs
        residual = np.linalg.norm(gap + t[ga, None] - t[gb, None], axis=2) * norm
        if robust:
            # A sample's redundancy 1 - h (h = its weight times the effective resistance between its windows,
            # the leverage) is the share of an error in it that shows in its residual. A pair that alone links
            # two parts of the graph (a chain of frame pairs) has none: it fits exactly whatever it says, so it
            # can neither be judged nor set the residuals' scale (its zeros made every pair on a cycle look
            # wild: forward dolly, seed 1); it keeps its weight. The others are judged by residual / sqrt(1 - h).
            resistance = inverse[ga, ga] + inverse[gb, gb] - inverse[ga, gb] - inverse[gb, ga]
            redundancy = 1.0 - w * resistance[:, None]
            testable = usable & (redundancy > MIN_REDUNDANCY)
            studentized = residual / np.sqrt(np.where(testable, redundancy, 1.0))
            sample_w = weight * norm**2
            if testable.any():
                sample_w[testable] *= cauchy_weights(studentized[testable], 1e-6)
            window_w = _window_weights(studentized, testable, ga, gb, num_windows)
    return WindowPoses(rotation=rotation, scale=scale, translation=t, weight=window_w)


def _window_weights(residual: np.ndarray, usable: np.ndarray, ga: np.ndarray, gb: np.ndarray,
                    num_windows: int) -> np.ndarray:
    """Down-weight windows whose typical residual is far above the others' (they disagree)."""
    per_pair = median_of_valid(residual, usable, axis=1)
    typical = np.full(num_windows, np.nan)
    for g in range(num_windows):
        mine = per_pair[(ga == g) | (gb == g)]
        mine = mine[np.isfinite(mine)]
        if len(mine):
            typical[g] = np.median(mine)
    if not np.isfinite(typical).any():  # a single window: nobody to disagree with
        return np.ones(num_windows)
    reference = np.nanmedian(typical)
    ratio = np.where(np.isfinite(typical), typical / max(reference, 1e-12), 1.0)
    return np.where(ratio > 2.0, np.maximum((2.0 / np.maximum(ratio, 2.0)) ** 2, MIN_WINDOW_WEIGHT), 1.0)


def smooth_trajectory(rotation: np.ndarray, centre: np.ndarray, rotation_var: np.ndarray, centre_var: np.ndarray,
                      smoothness: float, track_scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Temporal smoothness, in proportion to how much the windows disagree about each frame, or, where their
    disagreement does not measure the frames' errors (`track_scale` given), as much as the track's noise calls for.

    Minimises sum_i |X_i - X_hat_i|^2 / var_i + sum_i |X_{i-1} - 2 X_i + X_{i+1}|^2 / tau^2 separately for
    the rotations (9 numbers, re-projected to SO(3) after) and the centres, where var_i is the variance
    of frame i's fused estimate and tau = typical step / smoothness: the prior that the velocity changes
    by about 1/smoothness of a typical step per frame. Exact input (no disagreement) stays unchanged.
    track_scale: every frame weighs alike and the strength is the one most likely given the track itself
    (`track_smoothing`) times track_scale^2: cameras from optical flow share their windows' errors, so their
    spread understates them (docs/alignment.md, "Handheld shake and the temporal smoothness").
    rotation: [N, 3, 3]; centre: [N, 3]; rotation_var, centre_var: [N] (nan = unknown). Returns both smoothed.
    """
    n = len(centre)
    if smoothness <= 0 or n < 3:
        return rotation, centre
    penalty = _second_difference_penalty(n)
    out = []
    for values, var in ((rotation.reshape(n, 9), rotation_var), (centre, centre_var)):
        if track_scale is not None:
            strength = track_smoothing(values) * track_scale**2
            out.append(spla.spsolve((sp.identity(n) + strength * penalty).tocsc(), values) if strength > 0
                       else values)
            continue
        # Typical step over STEP_SPAN frames: noise in single steps would make it look larger.
        span = min(STEP_SPAN, n - 1)
        step = float(np.median(np.linalg.norm(values[span:] - values[:-span], axis=1))) / span
        known = np.isfinite(var)
        if step <= 0 or not known.any():
            out.append(values)
            continue
        var = np.where(known, var, np.median(var[known]))
        data_w = step**2 / np.maximum(var, (1e-6 * step) ** 2)
        system = (sp.diags(data_w) + smoothness**2 * penalty).tocsc()
        out.append(spla.spsolve(system, data_w[:, None] * values))
    return project_to_rotation(out[0].reshape(n, 3, 3)), out[1]


def tripod_track(rotation: np.ndarray, centre: np.ndarray, weight: np.ndarray, max_arm: float) -> np.ndarray:
    """The camera centres of a tripod shot: the camera turns about a fixed pivot with its centre a fixed lever arm
    o away from it (camera axes; on any head whose axis is not at the lens's entrance pupil), c_i = p + R_i o.

    Weighted least squares with p eliminated (c_i - c_mean = (R_i - R_mean) o), |o| <= max_arm: a long arm with
    a few degrees of rotation would also explain a dolly. The arm along a direction the rotations turn by less
    than TRIPOD_MIN_TURN is not fitted (along the pan's axis it moves nothing, and fitting it would fit noise).
    rotation: [N, 3, 3] camera to world; centre: [N, 3] (world units); weight: [N]; max_arm in world units.
    Returns the fitted centres [N, 3]."""
    weight = weight / weight.sum()
    turn = rotation - np.einsum("n,nij->ij", weight, rotation)  # R_i - R_mean [N, 3, 3]
    offset = centre - weight @ centre
    spread, direction = np.linalg.eigh(np.einsum("n,nji,njk->ik", weight, turn, turn))
    turned = spread > TRIPOD_MIN_TURN**2
    along = (direction.T @ np.einsum("n,nji,nj->i", weight, turn, offset))[turned]
    spread, direction = spread[turned], direction[:, turned]

    def arm(mu: float) -> np.ndarray:  # ridge on o: |o| falls as mu grows
        return direction @ (along / (spread + mu))

    o = arm(0.0)
    if np.linalg.norm(o) > max_arm:  # bisect mu (log scale) onto the bound
        low, high = np.log(spread.min()) - 20, np.log(spread.max()) + 20
        for _ in range(80):
            mid = 0.5 * (low + high)
            low, high = (mid, high) if np.linalg.norm(arm(np.exp(mid))) > max_arm else (low, mid)
        o = arm(np.exp(high))
    return weight @ centre + turn @ o


def _second_difference_penalty(n: int) -> sp.csc_matrix:
    """P = D^T D [N, N], D [N - 2, N] the second difference X_{i-1} - 2 X_i + X_{i+1}."""
    second = sp.diags([np.ones(n - 2), -2 * np.ones(n - 2), np.ones(n - 2)], [0, 1, 2], shape=(n - 2, n))
    return (second.T @ second).tocsc()


def track_smoothing(values: np.ndarray) -> float:
    """The smoothing strength lam most likely given a track values [N, D] (restricted maximum likelihood; 0 when
    the track is too short or exact to tell).

    The model: values = X + e, e white with one unknown variance sigma^2 for every frame and coordinate, and the
    track's second differences X_{i-1} - 2 X_i + X_{i+1} white with variance sigma^2 / lam (the straight-line
    part is free). Then the smoothed track (I + lam P)^-1 values (P = D^T D, D the second difference) is the
    most probable X, and lam is chosen on a logarithmic grid by the likelihood of the values' curved part,
    sigma^2 profiled out: a shake the track repeats coherently reads as motion, a frame-to-frame scatter
    as noise. Banded Cholesky: O(N) per grid value."""
    n, d = values.shape
    if n < 4:
        return 0.0
    penalty = _second_difference_penalty(n)
    ab = np.zeros((3, n))  # P in upper banded form
    ab[2], ab[1, 1:], ab[0, 2:] = penalty.diagonal(0), penalty.diagonal(1), penalty.diagonal(2)
    best, best_lam = np.inf, 0.0
    for lam in SMOOTHING_GRID:
        system = lam * ab
        system[2] += 1.0
        chol = cholesky_banded(system)
        fit = cho_solve_banded((chol, False), values)
        residual = float(np.sum(values * (values - fit)))  # values^T (I - (I + lam P)^-1) values
        if residual <= 1e-24 * max(float(np.sum(values * values)), 1e-300):
            return 0.0  # the track is a straight line: nothing to tell noise from motion by
        log_det = 2.0 * np.sum(np.log(chol[2]))  # log |I + lam P|
        cost = (n - 2) * np.log(residual / (d * (n - 2))) + log_det - (n - 2) * np.log(lam)  # -2 log L / d
        if cost < best:
            best, best_lam = cost, lam
    return best_lam
