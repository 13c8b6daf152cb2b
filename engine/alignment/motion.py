"""Cameras of every window slot from point maps in each frame's own camera (a model without rays).

Within a window the point maps share one scale, so two slots a and b of it are related by a rigid
motion: X_b = R_ab X_a + t_ab for the same scene point. Optical flow (correspondences.py) says which
pixel q' of b shows the point of a's pixel q; b's own point there, X_b(q'), is read from b's map.
Per pair of slots:
  - a rigid fit of the 3D-3D matches (Kabsch, residuals relative to depth) starts the motion;
  - Gauss-Newton refines it on two residuals per match: the 3D-2D one, R X_a + t projected with b's
    focal against the pixel q' (pixels: what flow measures well), and the depth one, log of its depth
    against log |X_b(q')|_z (what the point map measures well). Each is scaled by its own robust
    spread in the pair, and a match far off in either (a moving object, a wrong match, a depth
    outlier) is down-weighted (Cauchy), so it loses its say.
A model's focal error is shared by every frame of a window (the whole window's geometry follows it), so
nothing inside its point maps reveals it; the flow does (self-calibration): first, per pair, the motion
is fitted together with a focal correction s (a's points re-derived as (X / e^s, Y / e^s, Z), projected with
b's focal times e^s; rotation makes s observable, depth fixes the scale), the pairs' s averaged by their
variances (`window_focal_correction`) and weighed against the point maps' own focal (the prior, its
sigma the windows' focal spread, at least known.MODEL_FOCAL_SIGMA); the window's points and focal are
corrected by it before the motions above are fitted.
Then per window, over all its pairs (each slot with the slots 1, 2, 4, 8, ... frames later):
  - a pair whose motion disagrees with the chain of shorter pairs between its slots is dropped
    (`chain_consistent`: flow over a long gap locks onto a repetitive texture's next copy);
  - rotation averaging (poses.average_rotations, the window's first slot fixed to the identity);
  - the camera centres from the pairs' translations (poses.window_translations, the first slot at the
    origin: a's centre is at t_ab in b's frame), reweighted again.
The result is every slot's camera in its window's frame, as the rays or a DLT give it for Geo4D; the
rest of the alignment (window similarities, fusion, smoothing, depth) is shared.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from ..windows.predictions import WindowPredictions
from .cameras import SlotCameras
from .correspondences import FlowMatcher, bilinear
from .geometry import axis_angle_to_rotation, project_to_rotation, sample_pixels, umeyama
from .poses import average_rotations, window_translations
from .robust import cauchy_weights, median_of_valid

MATCH_PIXELS = 1024  # pixels per frame followed by the flow (matches are cheap; more points steady the fits)
MAX_GAP = 64  # frames: pairs are (a, a + 1), (a, a + 2), (a, a + 4), ... up to this gap
PAIR_CHUNK = 128  # pairs fitted at once (peak about 110 MB for 128 pairs of 1024 matches, measured)
MAX_STEPS = 50  # Gauss-Newton steps of a pair's motion at most (most converge in 5-10; a few cycle)
CONVERGED = 1e-5  # a pair's fit stops when its step turns it less (radians), shifts it less (of its depth)
MAX_FOCAL_STEP = 0.1  # log focal: the most a pair's focal correction moves in one Gauss-Newton step
MAX_FOCAL_CORRECTION = 0.4  # log focal: a pair's correction beyond +-50 % of the point map's focal is no fit
CHAIN_TOLERANCE = 0.25  # a pair's motion may put its points this fraction of the chain's image motion from the chain
CHAIN_MIN_SHIFT = 0.01  # ... and at least this fraction of the image width (the chain's own drift)


@dataclass
class SlotMatches:
    """The same scene points seen by two slots of one window: M pairs of P sampled pixels.

    a, b: int64[M] slot indices; points_a, points_b: float64[M, P, 3] each in its own camera frame;
    pixels_b: float64[M, P, 2] where b sees a's sampled pixels (from the principal point);
    weight: float64[M, P] (0 = no usable match); known: bool[M, P] a's point map has the pixel (valid, in front),
    matched or not.
    """

    a: np.ndarray
    b: np.ndarray
    points_a: np.ndarray
    points_b: np.ndarray
    pixels_b: np.ndarray
    weight: np.ndarray
    known: np.ndarray


def window_matches(windows: WindowPredictions, g: int, matcher: FlowMatcher, first_slot: int,
                   principal: np.ndarray) -> SlotMatches:
    """Flow-matched points of window g's slot pairs (a, a + 1), (a, a + 2), (a, a + 4), ...
    first_slot: the slot index of the window's first frame; principal: float[2] (x, y) the principal
    point (pixels of the maps from their top-left corner), which b's pixels are measured from."""
    v, u = matcher.v, matcher.u
    start, length = int(windows.window_starts[g]), int(windows.window_lengths[g])
    maps = np.asarray(windows.pointmap[g, :length], np.float64)
    valid = np.asarray(windows.pointmap_conf[g, :length] > 0, np.float64)
    a_list, b_list, pa, pb, qb, weights, known = [], [], [], [], [], [], []
    gap = 1
    while gap < min(length, MAX_GAP + 1):
        for ta in range(length - gap):
            tb = ta + gap
            target, ok = matcher.match(start + ta, start + tb)
            x_a = maps[ta, v, u]
            x_b = bilinear(maps[tb], target)
            usable = ok & (valid[ta, v, u] > 0) & (bilinear(valid[tb][..., None], target)[:, 0] > 0.999)
            usable &= (x_a[:, 2] > 0) & (x_b[:, 2] > 0)
            a_list.append(first_slot + ta)
            b_list.append(first_slot + tb)
            pa.append(x_a)
            pb.append(x_b)
            qb.append(target + 0.5 - principal)
            weights.append(usable.astype(np.float64))
            known.append((valid[ta, v, u] > 0) & (x_a[:, 2] > 0))
        gap *= 2
    p = len(v)
    if not a_list:  # a one-frame window
        return SlotMatches(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, p, 3)), np.zeros((0, p, 3)),
                           np.zeros((0, p, 2)), np.zeros((0, p)), np.zeros((0, p), bool))
    return SlotMatches(np.asarray(a_list, np.int64), np.asarray(b_list, np.int64), np.stack(pa), np.stack(pb),
                       np.stack(qb), np.stack(weights), np.stack(known))


@dataclass
class RelativeMotions:
    """Rigid motions X_b = R X_a + t of M slot pairs: rotation [M, 3, 3], translation [M, 3] (window units);
    inlier: [M, P] each match's final weight; pixel_spread: [M] robust spread of the reprojection (pixels);
    log_focal: [M] the focal correction s fitted with the motion (0 unless solve_focal), log_focal_var: [M]
    its variance (inf unless solve_focal)."""

    rotation: np.ndarray
    translation: np.ndarray
    inlier: np.ndarray
    pixel_spread: np.ndarray
    log_focal: np.ndarray
    log_focal_var: np.ndarray


def relative_motions(matches: SlotMatches, focal_b: np.ndarray, robust: bool = True,
                     solve_focal: bool = False) -> RelativeMotions:
    """The motion of every matched pair: Kabsch on the 3D-3D matches, then Gauss-Newton on the 3D-2D
    (pixel) and depth residuals, each reweighted (Cauchy), until the pair's step moves it less than CONVERGED
    (at most MAX_STEPS steps). focal_b: [M] b's focal, pixels.

    Run to convergence, not a fixed few steps: from a poor Kabsch start (distorted point maps, a large
    motion) six steps left pairs 0.1 rad from their fit, so the result jumped with the inputs' last digits
    (docs/alignment.md, "Converged motions").

    solve_focal: also fit, per pair, a focal correction s shared by both slots (self-calibration): a's
    points are re-derived with the focal e^s times their own (X, Y / e^s, Z: the pixel of X is f X/Z from
    the principal point) and projected with b's focal times e^s. Depth fixes the scale, so rotation makes
    s observable; with little rotation its variance (from the normal equations) is large."""
    m = len(matches.a)
    usable = matches.weight > 0
    depth_b = np.maximum(matches.points_b[..., 2], 1e-12)
    w0 = np.where(usable, matches.weight, 0.0)
    enough = usable.sum(axis=1) >= 6
    safe_w = np.where(enough[:, None], w0 / depth_b**2, 1.0)  # placeholder for pairs without matches
    _, rotation, translation = umeyama(matches.points_a, matches.points_b, safe_w, with_scale=False)
    rotation[~enough], translation[~enough] = np.eye(3), 0.0
    # the size of a translation step that counts as converged, relative to the pair's scene depth
    scale = np.nan_to_num(median_of_valid(depth_b, usable, axis=1), nan=1.0)
    unknowns = 7 if solve_focal else 6
    log_focal = np.zeros(m)
    robust_w, spread_px, normal = np.ones_like(w0), np.ones(m), np.tile(np.eye(unknowns), (m, 1, 1))
    active = np.arange(m)  # every pair takes the first step (its weights and spread), then those with matches
    for _ in range(MAX_STEPS):
        if not active.size:
            break
        step, robust_w[active], spread_px[active], normal[active] = _gauss_newton_step(
            matches.points_a[active], matches.pixels_b[active], depth_b[active], w0[active], usable[active],
            focal_b[active], rotation[active], translation[active], log_focal[active], robust, solve_focal)
        turn = axis_angle_to_rotation(step[:, :3])
        rotation[active] = turn @ rotation[active]
        translation[active] = np.einsum("mij,mj->mi", turn, translation[active]) + step[:, 3:6]
        moved = np.maximum(np.linalg.norm(step[:, :3], axis=1), np.linalg.norm(step[:, 3:6], axis=1) / scale[active])
        if solve_focal:
            log_focal[active] += step[:, 6]
            moved = np.maximum(moved, np.abs(step[:, 6]))
        active = active[(moved >= CONVERGED) & enough[active]]
    variance = np.full(m, np.inf)
    if solve_focal:  # a pair whose s ran to the edge of the trust region says nothing about it
        inside = enough & (np.abs(log_focal) < MAX_FOCAL_CORRECTION)
        variance = np.where(inside, np.linalg.inv(normal)[:, 6, 6], np.inf)
    return RelativeMotions(project_to_rotation(rotation), translation, np.where(usable, w0 * robust_w, 0.0),
                           spread_px, log_focal, variance)


def _gauss_newton_step(points_a: np.ndarray, pixels_b: np.ndarray, depth_b: np.ndarray, w0: np.ndarray,
                       usable: np.ndarray, focal_b: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                       log_focal: np.ndarray, robust: bool, solve_focal: bool
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One reweighted Gauss-Newton step of relative_motions for m pairs of P matches (their arrays as in
    SlotMatches; depth_b [m, P] b's depths, w0 [m, P] the matches' weights, the motion so far and its log
    focal correction [m]). Returns the step [m, 6 or 7] (omega, delta[, s]: Y -> Y + omega x Y + delta),
    the robust weights [m, P], the pixel spread [m] and the normal matrices [m, 6 or 7, 6 or 7]; pairs with
    fewer than 6 matches get a zero step."""
    m, unknowns = len(points_a), 7 if solve_focal else 6
    points_a = rescale(points_a, np.exp(log_focal))
    focal = focal_b * np.exp(log_focal)
    y = points_a @ np.swapaxes(rotation, 1, 2) + translation[:, None]
    ahead = usable & (y[..., 2] > 1e-9)
    z = np.where(ahead, y[..., 2], 1.0)
    r_px = focal[:, None, None] * y[..., :2] / z[..., None] - pixels_b
    r_z = np.log(z) - np.log(depth_b)
    e_px, e_z = np.linalg.norm(r_px, axis=2), np.abs(r_z)
    spread_px = np.maximum(1.4826 * np.nan_to_num(median_of_valid(e_px, ahead, axis=1), nan=1.0), 0.02)
    spread_z = np.maximum(1.4826 * np.nan_to_num(median_of_valid(e_z, ahead, axis=1), nan=1.0), 1e-4)
    robust_w = (cauchy_weights(e_px, 0.02, ahead) * cauchy_weights(e_z, 1e-4, ahead) if robust
                else np.ones_like(w0))
    w = np.where(ahead, w0 * robust_w, 0.0)
    # Jacobians of both residuals for the update Y -> Y + omega x Y + delta (6 unknowns per pair).
    jy_px = np.zeros(y.shape[:2] + (2, 3))
    jy_px[..., 0, 0] = jy_px[..., 1, 1] = 1.0 / z
    jy_px[..., :, 2] = -y[..., :2] / z[..., None] ** 2
    jy_px *= (focal / spread_px)[:, None, None, None]
    jy_z = np.zeros(y.shape[:2] + (1, 3))
    jy_z[..., 0, 2] = 1.0 / z
    jy_z /= spread_z[:, None, None, None]
    jac_y = np.concatenate([jy_px, jy_z], axis=2)  # [m, P, 3, 3]: d residual / d Y
    skew = np.zeros(y.shape + (3,))
    skew[..., 0, 1], skew[..., 0, 2], skew[..., 1, 2] = -y[..., 2], y[..., 1], -y[..., 0]
    skew[..., 1, 0], skew[..., 2, 0], skew[..., 2, 1] = y[..., 2], -y[..., 1], y[..., 0]
    parts = [-jac_y @ skew, jac_y]
    if solve_focal:
        # d Y / d s = -R (X, Y, 0) of a's re-derived point; the pixel also grows with the focal itself.
        lateral = points_a * np.array([1.0, 1.0, 0.0])
        dy_ds = -lateral @ np.swapaxes(rotation, 1, 2)
        d_px = (r_px + pixels_b) / spread_px[:, None, None]
        d_res = (jac_y @ dy_ds[..., None])[..., 0] + np.concatenate([d_px, np.zeros(y.shape[:2] + (1,))], axis=2)
        parts.append(d_res[..., None])
    jac = np.concatenate(parts, axis=3)  # [m, P, 3, 6 or 7]: d residual / d (omega, delta[, s])
    res = np.concatenate([r_px / spread_px[:, None, None], (r_z / spread_z[:, None])[..., None]], axis=2)
    jac = jac.reshape(m, -1, unknowns)  # rows: 3 residuals per match
    weighted = jac * np.repeat(w, 3, axis=1)[..., None]
    normal = np.swapaxes(weighted, 1, 2) @ jac + 1e-9 * np.eye(unknowns)  # batched matmul: BLAS, unlike einsum
    gradient = np.swapaxes(weighted, 1, 2) @ res.reshape(m, -1, 1)  # [m, unknowns, 1]
    step = -np.linalg.solve(normal, gradient)[..., 0]
    if solve_focal:
        # A trust region: s moves at most MAX_FOCAL_STEP a step, within +-MAX_FOCAL_CORRECTION. Where it binds,
        # the motion is solved again with s held at its limited step: the free step's motion, made for an s it
        # does not take, sent fits without rotation (s unobservable) turning by radians and drifting for 50 steps.
        limit = np.clip(np.clip(step[:, 6], -MAX_FOCAL_STEP, MAX_FOCAL_STEP),
                        -MAX_FOCAL_CORRECTION - log_focal, MAX_FOCAL_CORRECTION - log_focal)
        bound = limit != step[:, 6]
        if bound.any():
            held = normal[bound][:, :6, 6:] * limit[bound][:, None, None]
            step[bound, :6] = -np.linalg.solve(normal[bound][:, :6, :6], gradient[bound][:, :6] + held)[..., 0]
            step[bound, 6] = limit[bound]
    step[usable.sum(axis=1) < 6] = 0.0
    return step, robust_w, spread_px, normal


def cameras_from_motion(windows: WindowPredictions, slot_t: np.ndarray, focal: np.ndarray, principal: np.ndarray,
                        robust: bool = True, focal_sigma: float | None = None) -> SlotCameras:
    """Every slot's camera in its window's frame from camera-frame point maps and optical flow.

    slot_t: int[S] position of each slot in its window; focal: [S] each slot's focal (pixels) as its point
    map says; principal: float[2] (x, y) the principal point, pixels of the maps from their top-left corner.
    focal_sigma: the point maps' focal uncertainty (relative); given (not for a zoom: DIS moves patches
    without scaling them, and in a zoom its flow biased the focal by 4.5-8 % where exact matches gave
    0.2-0.4 %), each window's focal is also solved
    from the flow (`window_focal_correction`) and the two combined by their variances; the returned focal
    [S] is then the combined one (the point map's times its window's correction) and the cameras are those
    of point maps re-derived with it (X, Y scaled, Z kept: `rescale`). None: the focal is used as given.
    Slots no match ties to their window keep the identity camera. Matches are made and fitted a window (and
    a chunk of pairs) at a time, so memory stays bounded.
    """
    num_slots = len(slot_t)
    anchors = np.flatnonzero(slot_t == 0)
    h, w = windows.image_size
    v, u, _ = sample_pixels(h, w, MATCH_PIXELS)
    matcher = FlowMatcher(windows.rgb, v, u)
    focal = np.asarray(focal, float).copy()
    a, b, rel, trans, support, depth = [], [], [], [], [], []
    for g in range(windows.num_windows):
        matches = window_matches(windows, g, matcher, int(anchors[g]), principal)
        if focal_sigma is not None and len(matches.a):
            log_flow, var_flow = window_focal_correction(matches, focal, focal_sigma, robust)
            # The point map's focal is the prior (correction 0, variance focal_sigma^2); the flow's measures it.
            correction = np.exp(log_flow / var_flow / (1.0 / var_flow + 1.0 / focal_sigma**2))
            mine = slice(int(anchors[g]), int(anchors[g]) + int(windows.window_lengths[g]))
            focal[mine] *= correction
            matches = replace(matches, points_a=rescale(matches.points_a, correction),
                              points_b=rescale(matches.points_b, correction))
        motion = _concatenate([relative_motions(part, focal[part.b], robust) for part in _chunks(matches)])
        keep = chain_consistent(matches, motion, focal[matches.b], w) if robust else np.ones(len(matches.a), bool)
        a.append(matches.a[keep])
        b.append(matches.b[keep])
        rel.append(motion.rotation[keep])
        trans.append(motion.translation[keep])
        support.append((motion.inlier.sum(axis=1) / motion.pixel_spread**2)[keep])
        depth.append(median_of_valid(matches.points_a[..., 2], motion.inlier > 0, axis=1)[keep])
    if not a:  # one-frame windows only
        return SlotCameras(rotation=np.tile(np.eye(3), (num_slots, 1, 1)), centre=np.zeros((num_slots, 3)),
                           focal=focal)
    a, b, rel, trans, support, depth = (np.concatenate(x) for x in (a, b, rel, trans, support, depth))
    prior = support / max(float(support.max()), 1e-12) + 1e-6
    # C_a^T C_b = R_ab^T for camera-to-window rotations C.
    rotation = average_rotations(np.swapaxes(rel, 1, 2), a, b, num_slots, prior, anchors, robust)
    # a's centre is at t_ab in b's frame: C_a 0 + o_a = C_b t_ab + o_b, relative to the scene's depth.
    poses = window_translations(np.zeros((len(prior), 1, 3)), trans[:, None], prior[:, None],
                                np.nan_to_num(depth, nan=1.0)[:, None], a, b, rotation, np.ones(num_slots), robust,
                                anchors)
    return SlotCameras(rotation=rotation, centre=poses.translation, focal=focal)


def _chunks(matches: SlotMatches) -> list[SlotMatches]:
    """The pairs of `matches` in chunks of PAIR_CHUNK (the Gauss-Newton's memory grows with the pairs)."""
    return [SlotMatches(*(getattr(matches, f.name)[lo:lo + PAIR_CHUNK] for f in fields(SlotMatches)))
            for lo in range(0, len(matches.a), PAIR_CHUNK)]


def _concatenate(parts: list[RelativeMotions]) -> RelativeMotions:
    return RelativeMotions(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(RelativeMotions)))


def chain_consistent(matches: SlotMatches, motion: RelativeMotions, focal_b: np.ndarray, width: int) -> np.ndarray:
    """Which pairs' motions agree with the chain of shorter pairs between their slots: bool[M].

    Flow over a long gap can lock onto the wrong copy of a repetitive texture (a road's dashes, a fence, a
    checker: the camera moving about one period between the frames), and both directions then agree, so the
    forward-backward check passes and the pair's motion is consistently wrong (a dolly read as standing still).
    Shorter gaps are followed more reliably, so each pair (a, a + 2g) is checked against the composition of
    (a, a + g) and (a + g, a + 2g), each of them its own motion if it passed, else its own chain (gap 1 pairs
    are their own reference). A pair fails when a's points, moved by its motion and by the chain's and
    projected with b's focal, land further apart (median) than CHAIN_TOLERANCE of the chain's own image motion
    of them, and than CHAIN_MIN_SHIFT of the image width (`_agrees`), or when it has too few matches for a
    motion of its own. All of a's known points are compared, not only the pair's matches: where the flow failed
    on what moved most (the near road of a fast dolly), its surviving matches are mostly the far points, which
    barely move whatever the motion, so a dolly read as standing still agreed with the chain on them (the bench's
    forward dolly laid out with scene seed 2: path 1.56 % noise-free, 0.04 % comparing every point). Dropping a
    pair leaves its slots tied by the chain, whose one-frame pairs then carry the window alone: the translation
    solve keeps such links out of its reweighting (poses.window_translations).
    focal_b: [M] b's focal, pixels; width: the maps' width, pixels."""
    best: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    keep = np.ones(len(matches.a), bool)
    for m in np.argsort(matches.b - matches.a, kind="stable"):  # shorter gaps first
        a, b = int(matches.a[m]), int(matches.b[m])
        own = (motion.rotation[m], motion.translation[m])
        half = (b - a) // 2
        first, second = best.get((a, a + half)), best.get((a + half, b))
        if b - a < 2 or first is None or second is None:
            best[(a, b)] = own
            continue
        rotation = second[0] @ first[0]
        translation = second[0] @ first[1] + second[1]
        # Fewer than 6 matches: no motion of its own was fitted (relative_motions keeps a placeholder).
        keep[m] = (motion.inlier[m] > 0).sum() >= 6 and _agrees(matches.points_a[m][matches.known[m]], own,
                                                                 (rotation, translation), focal_b[m], width)
        best[(a, b)] = own if keep[m] else (rotation, translation)
    return keep


def _agrees(points: np.ndarray, own: tuple[np.ndarray, np.ndarray], chain: tuple[np.ndarray, np.ndarray],
            focal: float, width: int) -> bool:
    """Whether a's points [P, 3], moved by the pair's own motion and by the chain's (rotation,
    translation) and projected with b's focal, land within tolerance of each other (chain_consistent).
    A point one of them puts behind b (the camera went past it) and the other not is infinitely far from where
    the other puts it: a forward dolly read as standing still has many points so. One both put behind b says
    nothing."""
    start = _project(points, np.eye(3), np.zeros(3), focal)
    chained = _project(points, *chain, focal)
    direct = _project(points, *own, focal)
    seen = np.isfinite(chained).all(axis=1) | np.isfinite(direct).all(axis=1)
    if not seen.any():
        return True
    gaps = np.nan_to_num(np.linalg.norm(direct - chained, axis=1), nan=np.inf)[seen]
    shifts = np.linalg.norm(chained - start, axis=1)
    shift = float(np.median(shifts[np.isfinite(shifts)])) if np.isfinite(shifts).any() else 0.0
    return bool(np.median(gaps) <= max(CHAIN_TOLERANCE * shift, CHAIN_MIN_SHIFT * width))


def _project(points: np.ndarray, rotation: np.ndarray, translation: np.ndarray, focal: float) -> np.ndarray:
    """Pixels [P, 2] (from the principal point) of points [P, 3] moved by (rotation, translation); nan behind."""
    y = points @ rotation.T + translation
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y[:, 2:] > 1e-9, focal * y[:, :2] / y[:, 2:], np.nan)


def window_focal_correction(matches: SlotMatches, focal: np.ndarray, prior_sigma: float,
                            robust: bool = True) -> tuple[float, float]:
    """The log of the factor by which one window's focal (and so its point maps' X/Z, Y/Z) is off, from the
    flow: each pair's motion fitted with a focal correction of its own (`relative_motions(solve_focal=True)`),
    averaged over the pairs by their variances. Returns (log correction, its variance; inf: nothing seen).

    Only pairs that measure the focal better than the prior does (sigma below prior_sigma) take part: the
    pairs of a window share its frames (and its depth and flow errors), so many weak pairs biased alike
    (a zoom's flow, frames with little rotation) would otherwise add up to a false certainty. For the same
    reason the variance is that of a mean of the window's L - 1 frame steps (or of its pairs, if fewer)
    with the pairs' weighted spread about it, and at least the pairs' own combined variance.
    focal: [S] every slot's focal (pixels)."""
    fits = [relative_motions(part, focal[part.b], robust, solve_focal=True) for part in _chunks(matches)]
    s, var = (np.concatenate([getattr(fit, name) for fit in fits]) for name in ("log_focal", "log_focal_var"))
    seen = np.isfinite(var) & (var > 0) & (var < prior_sigma**2)
    if not seen.any():
        return 0.0, np.inf
    weight = 1.0 / var[seen]
    mean = float(np.sum(weight * s[seen]) / weight.sum())
    spread_sq = float(np.sum(weight * (s[seen] - mean) ** 2) / weight.sum())
    steps = min(len(np.unique(np.concatenate([matches.a, matches.b]))) - 1, int(seen.sum()))
    return mean, max(spread_sq / max(steps, 1), 1.0 / float(weight.sum()))


def rescale(points: np.ndarray, correction: float | np.ndarray) -> np.ndarray:
    """Camera-frame points [..., P, 3] re-derived for a focal `correction` times their own (a number, or one
    per leading index [...]): the pixel of X is f X/Z from the principal point, so X and Y shrink by it."""
    shrink = 1.0 / np.asarray(correction, float)[..., None]
    return points * np.stack([shrink, shrink, np.ones_like(shrink)], axis=-1)


def in_own_cameras(windows: WindowPredictions, cameras: SlotCameras, slot_window: np.ndarray,
                   slot_t: np.ndarray) -> WindowPredictions:
    """Window-frame point maps moved into each slot's own camera (camera [S] in the window frame): the
    same predictions as a model without rays would give them (a copy of the point maps in memory)."""
    pointmap = np.zeros(windows.pointmap.shape, np.float32)
    for s, (g, t) in enumerate(zip(slot_window, slot_t)):
        pointmap[g, t] = (np.asarray(windows.pointmap[g, t], np.float64) - cameras.centre[s]) @ cameras.rotation[s]
    return replace(windows, pointmap=pointmap, pointmap_frame="camera")
