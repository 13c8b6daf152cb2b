"""The multi-modal alignment: sliding-window predictions -> one camera track and one depth per frame.

Stages of `align`, each a function filling in `Slots` (docs/alignment.md explains the choices):
  1. cameras of every window slot in its window's frame, from the rays (focal by DLT, rotation by
     Kabsch, centre by ray intersection) averaged with those from the point map (a reweighted DLT);
  2. the focal length: one for the clip (median over slots), or one per frame (zoom shots); for point maps
     in each frame's own camera (a model without rays), each window's focal is also measured from the
     optical flow (motion.py) and weighed against the point maps';
  3. one similarity per window to the world (poses.py): rotation averaging, then scales and
     translations from the points and centres the windows share, robustly reweighted;
  4. per frame, the cameras of all windows that see it are averaged, then smoothed over time; the solve's
     quality: each frame's error in pixels (quality.py);
  5. per frame, depth from every window's point map and disparity, fused robustly (depth.py).
World = the first camera; the scale is the first window's.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ..errors import InputError
from ..formats.bundle import Reconstruction
from ..options import AlignOptions
from ..windows.predictions import WindowPredictions
from ..reporting import FIRST_FRAME, Progress, frame_numbers
from .cameras import (SlotCameras, cameras_from_points, centre_from_rays,
                      focal_from_camera_points, focal_from_rays, fuse_cameras, rotation_from_rays)
from .depth import DisparityFit, fit_disparity, fuse_depths
from .geometry import intrinsics, project_to_rotation, sample_pixels
from .known import KnownCamera, apply_known_focal, known_camera, model_focal_sigma
from .motion import cameras_from_motion, in_own_cameras, rescale
from .quality import SolveQuality, quality_note, solve_quality
from .poses import (WindowPoses, slot_pairs, smooth_trajectory, tripod_track, window_rotations, window_scales,
                    window_translations)

ZOOM_MIN_CHANGE = 0.04  # auto per-frame focal from a zoom of 4 % (log): below, a shared focal is off by ~2 % at most
NODAL_TRAVEL = 0.005  # auto nodal pan: a track the tripod model misses by (RMS, less its noise) under 0.5 % of the
# median depth is a tripod shot
TRIPOD_ARM = 0.05  # on a tripod the lens sits at most 5 % of the scene's median depth off the pivot
CENTRE_WEIGHT = 10.0  # a camera centre counts as 10x all sampled pixels of its frame: rays locate it
# better than a smoothly distorted point map does
ADJACENT_WEIGHT = 0.1  # pairs of adjacent (not shared) frames are only approximately the same camera


@dataclass
class Slots:
    """A slot is one frame of one window (S slots in all); the stages of `align` fill in what they learn.

    window, t, frame: int64[S], the slot's window, its index in the window and its frame (0..N-1).
    clip_frames: int64[N], the clip frame (0-based) of each of the N frames, for what errors name.
    v, u: int[P] the pixels sampled in every slot for the pose solve; pixels: float[P, 2] their (x, y).
    points: float64[S, P, 3] the sampled point maps (window frame); conf: float64[S, P] their confidence.
    Stage 1 adds focal [N] per frame, rotation [S, 3, 3] and centre [S, 3] (camera to window frame),
    depth [S, P] of the sampled points, usable [S, P] (confident, in front), and sources (one SlotCameras
    per modality, for the frames' uncertainty); from_flow: the cameras came from the optical flow (motion.py).
    """

    window: np.ndarray
    t: np.ndarray
    frame: np.ndarray
    clip_frames: np.ndarray
    v: np.ndarray
    u: np.ndarray
    pixels: np.ndarray
    points: np.ndarray
    conf: np.ndarray
    focal: np.ndarray | None = None
    rotation: np.ndarray | None = None
    centre: np.ndarray | None = None
    depth: np.ndarray | None = None
    usable: np.ndarray | None = None
    sources: list[SlotCameras] | None = None
    from_flow: bool = False


def align(windows: WindowPredictions, options: AlignOptions | None = None,
          progress: Progress | None = None, plate_size: tuple[int, int] | None = None,
          frames: np.ndarray | None = None) -> Reconstruction:
    """Fuse the windows of a clip into cameras, intrinsics and depth for each of its frames.

    Args:
        windows: G windows of T frames over N frames at (H, W) (engine.windows.predictions).
        options: AlignOptions (default AlignOptions()).
        progress: hears stages "cameras", "poses" and "depth" with one fraction for the whole alignment.
        plate_size: (H, W) of the clip, whose pixels a known focal (px) and principal point count in
            (default the maps' size).
        frames: int64[N], the clip frame (0-based) of each of the windows' N frames, the Reconstruction's
            `frames` and what errors name (default 0..N-1: the windows cover the clip from its first frame).

    Returns:
        Reconstruction of the N frames: K [N, 3, 3], camera_to_world [N, 4, 4] (world = the first camera,
        OpenCV axes, the first window's scale), depth and confidence float32[N, H, W].

    Raises:
        InputError when the predictions are too degenerate to solve (validate refuses the known kinds:
            all-zero or constant point maps, zero rays; this catches what slips past it).
    """
    try:
        return _align(windows, options, progress, plate_size,
                      np.arange(windows.num_frames, dtype=np.int64) if frames is None else np.asarray(frames))
    except np.linalg.LinAlgError as exc:
        raise InputError(f"the window predictions are degenerate: the alignment cannot solve for the cameras "
                         f"({exc})", "check the model's output; mark pixels without geometry with "
                         "pointmap_conf = 0") from None


def _align(windows: WindowPredictions, options: AlignOptions | None,
           progress: Progress | None, plate_size: tuple[int, int] | None, frames: np.ndarray) -> Reconstruction:
    opts = options or AlignOptions()
    report = progress or (lambda stage, fraction: None)
    started = time.perf_counter()
    windows.validate()
    known = known_camera(opts, windows.image_size, plate_size or windows.image_size)
    slots = _sample_slots(windows, opts, known.principal, frames)  # 0. every window's frames, at sampled pixels
    report("cameras", 0.0)
    if opts.motion_cameras and windows.pointmap_frame == "window":
        windows = _in_own_cameras(windows, slots)           # 0b. (cross-check) each frame's map in its camera
    _slot_cameras(windows, slots, opts, known)              # 1-2. each slot's camera; focal lengths
    report("poses", 0.3)
    poses = _window_poses(slots, windows.num_windows, opts)  # 3. one similarity per window to the world
    report("cameras", 0.6)
    c2w, tripod = _frame_cameras(slots, poses, windows.num_frames, opts)  # 4. each frame's camera, smoothed
    quality = _quality(slots, poses, c2w, windows.image_size[1])  # 4b. how well they explain the predictions
    c2w = np.linalg.inv(c2w[0]) @ c2w  # world = the first camera
    report("depth", 0.7)
    depth, confidence = _frame_depths(windows, slots, poses, opts, report)  # 5. each frame's depth
    return Reconstruction(
        frames=frames, fps=windows.fps,
        K=intrinsics(slots.focal, *windows.image_size, known.principal), camera_to_world=c2w, depth=depth,
        confidence=confidence,
        rgb=windows.rgb, source_clip=windows.source,
        metadata={"alignment": _facts(opts, poses, quality, tripod, started)})


def _facts(opts: AlignOptions, poses: WindowPoses, quality: SolveQuality, tripod: bool, started: float) -> dict:
    """What the bundle records about the alignment (scene.json metadata.alignment)."""
    return {
        "method": "parallax multi-modal v1", "options": asdict(opts), "tripod_shot": tripod,
        "window_weights": [round(float(x), 4) for x in poses.weight],
        "down_weighted_windows": [int(g) for g in np.flatnonzero(poses.weight < 0.5)],
        "quality": quality.to_json(),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _sample_slots(windows: WindowPredictions, opts: AlignOptions, principal: np.ndarray,
                  clip_frames: np.ndarray) -> Slots:
    """Stage 0: the slots, and the point maps at `opts.pose_pixels` sampled pixels of each (their coordinates
    from the principal point [2], pixels of the maps); clip_frames int64[N] the clip frame of each frame."""
    h, w = windows.image_size
    slot_window = np.concatenate([np.full(length, g) for g, length in enumerate(windows.window_lengths)])
    slot_t = np.concatenate([np.arange(length) for length in windows.window_lengths])
    slot_frame = windows.window_starts[slot_window] + slot_t
    v, u, pixels = sample_pixels(h, w, opts.pose_pixels)
    pixels = pixels - (principal - [w / 2.0, h / 2.0])
    sw, st = slot_window[:, None], slot_t[:, None]
    return Slots(window=slot_window, t=slot_t, frame=slot_frame, clip_frames=clip_frames, v=v, u=u, pixels=pixels,
                 points=windows.pointmap[sw, st, v, u].astype(np.float64),
                 conf=windows.pointmap_conf[sw, st, v, u].astype(np.float64))


def _in_own_cameras(windows: WindowPredictions, slots: Slots) -> WindowPredictions:
    """Stage 0b (motion_cameras): each frame's point map moved into its own camera by its DLT, as a model
    without rays gives them, and the slots' points sampled again from it."""
    own = cameras_from_points(slots.points, slots.conf, slots.pixels)
    _check_placeable(own.focal, slots, "place its camera from the point map alone")
    windows = in_own_cameras(windows, own, slots.window, slots.t)
    slots.points = windows.pointmap[slots.window[:, None], slots.t[:, None], slots.v, slots.u].astype(np.float64)
    return windows


def _slot_cameras(windows: WindowPredictions, slots: Slots, opts: AlignOptions, known: KnownCamera) -> None:
    """Stages 1-2: each slot's camera in its window's frame and the focal length of each frame: from the
    motion between frames (point maps in each frame's own camera: a model without rays), from the rays and
    the point map, or from the point map alone, a known focal held or refined (known.py); then the sampled
    points' depths."""
    n = windows.num_frames
    sw, st, v, u, pixels = slots.window[:, None], slots.t[:, None], slots.v, slots.u, slots.pixels
    if windows.pointmap_frame == "camera":
        # Each frame's points in its own camera: the focal from the points and, unless known, from the flow
        # (self-calibration, weighed against the point maps' focal by the spread of the windows' estimates);
        # the poses from the motion.
        slot_focal = focal_from_camera_points(slots.points, slots.conf, pixels)
        _check_placeable(slot_focal, slots, "find its focal length from the point map")
        if known.focal is None:
            zoom = _zooms(slot_focal, slots, n, opts.per_frame_focal)  # DIS's flow is biased by a zoom
            cameras = cameras_from_motion(windows, slots.t, slot_focal, known.principal, opts.robust,
                                          None if zoom else model_focal_sigma(slot_focal, slots.window))
            slots.points = rescale(slots.points, cameras.focal / slot_focal)  # the points the cameras were fitted to
            slot_focal = cameras.focal
            focal = _frame_focal(slot_focal, slots, n, opts.per_frame_focal)
        else:
            focal = apply_known_focal(_frame_focal(slot_focal, slots, n, opts.per_frame_focal), slot_focal,
                                      slots.window, known)
            cameras = cameras_from_motion(windows, slots.t, focal[slots.frame], known.principal, opts.robust)
        sources = [cameras]
        slots.from_flow = True
        slots.points = slots.points @ np.swapaxes(cameras.rotation, 1, 2) + cameras.centre[:, None]  # window frames
    elif opts.use_rays and "rays" in windows.modalities:
        from_points = cameras_from_points(slots.points, slots.conf, pixels)
        dirs = windows.ray_dirs[sw, st, v, u].astype(np.float64)
        dirs /= np.maximum(np.linalg.norm(dirs, axis=2, keepdims=True), 1e-12)  # other writers may not normalise
        ray_focal = focal_from_rays(dirs, pixels)
        focal = apply_known_focal(_frame_focal(ray_focal, slots, n, opts.per_frame_focal),  # rays measure it best
                                  ray_focal, slots.window, known)
        from_rays = SlotCameras(rotation=rotation_from_rays(dirs, pixels, focal[slots.frame]),
                                centre=centre_from_rays(dirs, windows.ray_moments[sw, st, v, u].astype(np.float64)),
                                focal=ray_focal)
        cameras = fuse_cameras(from_rays, from_points)
        sources = [from_rays, from_points]
    else:
        from_points = cameras_from_points(slots.points, slots.conf, pixels)
        _check_placeable(from_points.focal, slots, "place its camera from the point map alone",
                         "align with the rays (drop --no-rays)" if "rays" in windows.modalities else None)
        focal = apply_known_focal(_frame_focal(from_points.focal, slots, n, opts.per_frame_focal), from_points.focal,
                                  slots.window, known)
        cameras = from_points
        sources = [from_points]
    slots.focal, slots.sources = focal, sources
    slots.rotation, slots.centre = cameras.rotation, cameras.centre
    slots.depth = np.einsum("spi,si->sp", slots.points - slots.centre[:, None], slots.rotation[:, :, 2])
    slots.usable = (slots.conf > 0) & (slots.depth > 0)


def _window_poses(slots: Slots, num_windows: int, opts: AlignOptions) -> WindowPoses:
    """Stage 3: one similarity per window to the world (poses.py), from the points and centres the windows
    share; windows that disagree are down-weighted and the solve repeated (robust)."""
    points, conf, depth, centre = slots.points, slots.conf, slots.depth, slots.centre
    pairs = slot_pairs(slots.window, slots.frame)
    ga, gb = slots.window[pairs.a], slots.window[pairs.b]
    both = slots.usable[pairs.a] & slots.usable[pairs.b]
    pair_w = np.where(both, np.sqrt(conf[pairs.a] * conf[pairs.b]), 0.0)
    pair_w *= np.where(pairs.adjacent, ADJACENT_WEIGHT, 1.0)[:, None]
    centre_w = CENTRE_WEIGHT * pair_w.sum(axis=1, keepdims=True)
    frame_depth = np.sort(np.where(both, depth[pairs.a], np.inf), axis=1)[np.arange(len(ga)), both.sum(axis=1) // 2]
    centre_w = np.where(np.isfinite(frame_depth), centre_w[:, 0], 0.0)[:, None]
    window_weight = np.ones(num_windows)
    # Solve once; if some windows disagree, solve again with them down-weighted everywhere.
    for _ in range(2 if opts.robust else 1):
        window_rot = window_rotations(slots.rotation, slots.window, pairs, num_windows, window_weight, opts.robust)
        scale = window_scales(depth[pairs.a], depth[pairs.b], both, ga, gb, window_weight, opts.robust)
        world_depth = scale[ga, None] * np.concatenate(
            [depth[pairs.a], np.nan_to_num(frame_depth, posinf=1.0)[:, None]], axis=1)
        poses = window_translations(
            np.concatenate([points[pairs.a], centre[pairs.a][:, None]], axis=1),
            np.concatenate([points[pairs.b], centre[pairs.b][:, None]], axis=1),
            np.concatenate([pair_w, centre_w], axis=1), world_depth, ga, gb, window_rot, scale, opts.robust)
        if np.all(poses.weight == window_weight):
            break
        window_weight = poses.weight
    return poses


def _frame_cameras(slots: Slots, poses: WindowPoses, n: int, opts: AlignOptions) -> tuple[np.ndarray, bool]:
    """Stage 4: each frame's camera [N, 4, 4] (camera to the windows' world): the weighted mean of
    its slots' cameras in the world, smoothed over time in proportion to their spread; on a tripod (nodal_pan)
    the centres on the arc of a lens turning about one pivot. And whether they were put on a tripod."""
    slot_window, slot_frame = slots.window, slots.frame
    world_rot, world_centre = _to_world(poses, slot_window, slots.rotation, slots.centre)
    slot_w = poses.weight[slot_window]
    frame_rot = np.zeros((n, 3, 3))
    frame_centre = np.zeros((n, 3))
    frame_w = np.zeros(n)
    np.add.at(frame_rot, slot_frame, slot_w[:, None, None] * world_rot)
    np.add.at(frame_centre, slot_frame, slot_w[:, None] * world_centre)
    np.add.at(frame_w, slot_frame, slot_w)
    frame_rot = project_to_rotation(frame_rot)
    frame_centre /= frame_w[:, None]
    # How uncertain each frame's camera is: the spread of every window's estimate from every source.
    sources = slots.sources
    per_source = [_to_world(poses, slot_window, np.nan_to_num(c.rotation), np.nan_to_num(c.centre)) for c in sources]
    frames_all = np.concatenate([slot_frame] * len(sources))
    weights_all = np.concatenate([slot_w * ~np.isnan(c.focal) for c in sources])
    rot_var = _variance_of_mean(np.concatenate([r for r, _ in per_source]).reshape(-1, 9),
                                frame_rot.reshape(-1, 9), weights_all, frames_all, n)
    centre_var = _variance_of_mean(np.concatenate([c for _, c in per_source]), frame_centre, weights_all,
                                   frames_all, n)
    # A tripod shot: judged on the fused track (what a tripod leaves unexplained, less the frames' own noise),
    # fitted on the smoothed one.
    depth = _median_depth(slots, poses) if opts.nodal_pan != "off" else 0.0
    tripod = opts.nodal_pan == "on" or (opts.nodal_pan == "auto" and travel(
        frame_centre - tripod_track(frame_rot, frame_centre, frame_w, TRIPOD_ARM * depth), centre_var
    ) < NODAL_TRAVEL * depth)
    # Cameras from the flow: most frames have one window's estimate, and windows share the flow's errors, so
    # their spread says little; the track itself says how smooth it is, the default smoothness taking that as is.
    track_scale = opts.smoothness / AlignOptions().smoothness if slots.from_flow else None
    frame_rot, frame_centre = smooth_trajectory(frame_rot, frame_centre, rot_var, centre_var, opts.smoothness,
                                                track_scale)
    if tripod:  # the lens on an arc about one pivot
        frame_centre = tripod_track(frame_rot, frame_centre, frame_w, TRIPOD_ARM * depth)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3], c2w[:, :3, 3] = frame_rot, frame_centre
    return c2w, tripod


def travel(centre: np.ndarray, centre_var: np.ndarray) -> float:
    """How far a camera track moves (world units): the RMS distance of the frames' centres [N, 3] (or of what a
    model leaves of them) from their mean, less what their own noise (variance of each frame's centre [N],
    nan = unknown) accounts for."""
    spread = float(np.mean(np.sum((centre - centre.mean(axis=0)) ** 2, axis=1)))
    noise = float(np.nanmedian(centre_var)) if np.isfinite(centre_var).any() else 0.0
    return float(np.sqrt(max(spread - noise, 0.0)))


def _median_depth(slots: Slots, poses: WindowPoses) -> float:
    """The scene's median depth in world units, over every window's usable sampled points."""
    return float(np.median((slots.depth * poses.scale[slots.window, None])[slots.usable]))


def _quality(slots: Slots, poses: WindowPoses, c2w: np.ndarray, width: int) -> SolveQuality:
    """Stage 4b: each frame's error in pixels: every window's points of the frame, placed in the world by its
    similarity, projected through the frame's solved camera (quality.py)."""
    rot, scale, shift = poses.rotation[slots.window], poses.scale[slots.window], poses.translation[slots.window]
    world = scale[:, None, None] * np.einsum("sij,spj->spi", rot, slots.points) + shift[:, None]
    down = poses.weight[slots.window] < 0.5
    return solve_quality(world, slots.usable, slots.frame, poses.weight[slots.window], slots.pixels, c2w,
                         slots.focal, width, down)


def _frame_depths(windows: WindowPredictions, slots: Slots, poses: WindowPoses, opts: AlignOptions,
                  report: Progress) -> tuple[np.ndarray, np.ndarray]:
    """Stage 5: each frame's depth and confidence float32[N, H, W], fused robustly (depth.py) from every
    window's point map and (use_disparity) its disparity fitted to the point depths."""
    n, (h, w), num_windows = windows.num_frames, windows.image_size, windows.num_windows
    slot_window, slot_t, slot_frame, rotation, centre = slots.window, slots.t, slots.frame, slots.rotation, slots.centre
    use_disparity = opts.use_disparity and "disparity" in windows.modalities
    camera_frame = windows.pointmap_frame == "camera"
    disparity_fit = [DisparityFit()] * num_windows
    if use_disparity:
        disp = windows.disparity[slot_window[:, None], slot_t[:, None], slots.v, slots.u].astype(np.float64)
        for g in range(num_windows):
            mine = slot_window == g
            disparity_fit[g] = fit_disparity(disp[mine].ravel(), (slots.depth[mine] * poses.scale[g]).ravel(),
                                             np.where(slots.usable[mine], slots.conf[mine], 0.0).ravel())
    fused = np.zeros((n, h, w), np.float32)
    confidence = np.zeros((n, h, w), np.float32)
    for i in range(n):
        estimates, weights = [], []
        for s in np.flatnonzero(slot_frame == i):
            g, t = slot_window[s], slot_t[s]
            # float32 at least: stored maps may be float16, too coarse to compute in
            c = windows.pointmap_conf[g, t].astype(np.float32) * poses.weight[g]
            if camera_frame:
                z = np.asarray(windows.pointmap[g, t, ..., 2], np.float32)
            else:
                z = (windows.pointmap[g, t] - centre[s].astype(np.float32)) @ rotation[s][:, 2].astype(np.float32)
            estimates.append(z * poses.scale[g])
            weights.append(c)
            if use_disparity:
                estimates.append(disparity_fit[g].depth(windows.disparity[g, t].astype(np.float32)))
                weights.append(c)
        fused[i], confidence[i] = fuse_depths(np.stack(estimates), np.stack(weights), opts.outlier_threshold,
                                              opts.robust)
        report("depth", 0.7 + 0.3 * (i + 1) / n)
    return fused, confidence


def alignment_notes(windows: WindowPredictions, recon: Reconstruction,
                    plate_width: int | None) -> list[tuple[str, str]]:
    """What the alignment tells the artist, as (level, sentence) in the order to show them: the down-weighted
    windows ("warning"), the solve error ("info", in pixels of the plate `plate_width` wide; None where it is
    unknown) and the tripod shot the alignment decided on by itself ("info")."""
    down, tripod = down_weighted_note(windows, recon), tripod_note(recon)
    notes = [("warning", down)] if down else []
    notes.append(("info", quality_note(recon.metadata, recon.frames, plate_width)))
    return notes + ([("info", tripod)] if tripod else [])


def down_weighted_note(windows: WindowPredictions, recon: Reconstruction) -> str | None:
    """A sentence for the artist naming the frames of the windows the alignment down-weighted (they disagreed
    with the others: a moving object, a cut, a model failure), counted from 1 as Blender plays a clip, or None."""
    dropped = recon.metadata["alignment"]["down_weighted_windows"]
    if not dropped:
        return None
    numbers = frame_numbers(recon.frames)
    spans = ", ".join(f"{numbers[s]}-{numbers[s + n - 1]}"
                      for s, n in zip(windows.window_starts[dropped], windows.window_lengths[dropped]))
    return (f"{len(dropped)} of {windows.num_windows} windows disagreed with the others and were down-weighted "
            f"(frames {spans} of the clip, counting from {FIRST_FRAME}); check the camera there")


def tripod_note(recon: Reconstruction) -> str | None:
    """A sentence for the artist when the alignment took the shot for a tripod shot by itself (nodal_pan auto),
    or None."""
    facts = recon.metadata["alignment"]
    if not facts["tripod_shot"] or facts["options"]["nodal_pan"] != "auto":
        return None
    return ("the camera only turned about one point, so it was solved as a tripod shot (its lens on an arc about "
            "one pivot); if it did travel, Tripod: Free Camera (--nodal-pan off) keeps it free")


def _check_placeable(slot_focal: np.ndarray, slots: Slots, what: str, fix: str | None = None) -> None:
    """Refuse slots whose point map had too few valid points (their focal is nan)."""
    lacking = np.isnan(slot_focal)
    if lacking.any():
        s = int(np.flatnonzero(lacking)[0])
        number = frame_numbers([slots.clip_frames[slots.frame[s]]])[0]
        raise InputError(f"frame {number} of the clip (counting from {FIRST_FRAME}) has too few valid points in "
                         f"window {slots.window[s]} to {what}",
                         fix or "check the model's output for that frame (an all-invalid point map?)")


def _frame_focal(slot_focal: np.ndarray, slots: Slots, n: int, per_frame: str) -> np.ndarray:
    """Focal length of each frame [N]: the median over all slots ("off"), over each frame's slots ("on"), or
    per frame when the focal is seen to change over the shot ("auto", `focal_change`). Per frame, each
    window's focal is first brought to the others' (`window_focal_bias`)."""
    if _zooms(slot_focal, slots, n, per_frame):
        unbiased = slot_focal * np.exp(-window_focal_bias(slot_focal, slots.window, slots.frame, n)[slots.window])
        return np.array([np.median(unbiased[slots.frame == i]) for i in range(n)])
    return np.full(n, float(np.median(slot_focal)))


def window_focal_bias(slot_focal: np.ndarray, slot_window: np.ndarray, slot_frame: np.ndarray, n: int
                      ) -> np.ndarray:
    """Each window's log focal bias against the others [G], from the frames they share.

    A model's focal bias is one per window (focal_change), so where each frame takes its own windows' focal (a
    zoom), a window further off than the rest would take its frames with it. Windows g and h seeing the same
    frames differ by b_g - b_h = the median over those frames of log f_g - log f_h; the b solve that in least
    squares and are shifted so that the slots' median bias is 0, the consensus the fixed focal (the slots'
    median) has too. Zero when the windows do not all connect through shared frames (nothing relates them).
    slot_focal, slot_window, slot_frame: [S] (pixels; window and frame of each slot, one slot per both)."""
    g_count = int(slot_window.max()) + 1
    log_f = np.full((g_count, n), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_f[slot_window, slot_frame] = np.log(slot_focal)
    seen = np.isfinite(log_f)
    log_f[~seen] = np.nan  # a focal of 0 or below tells nothing
    seen = seen.astype(np.int64)
    shared = np.triu(seen @ seen.T, 1)  # frames each pair of windows shares
    bias = np.zeros(g_count)
    if g_count == 1 or connected_components(sparse.csr_matrix(shared), directed=False)[0] > 1:
        return bias
    pairs = np.argwhere(shared > 0)
    differences = [np.nanmedian(log_f[g] - log_f[h]) for g, h in pairs]
    a = np.zeros((len(pairs) + 1, g_count))
    a[np.arange(len(pairs)), pairs[:, 0]] = 1
    a[np.arange(len(pairs)), pairs[:, 1]] = -1
    a[-1] = 1  # the gauge, moved to the slots' median below
    bias = np.linalg.lstsq(a, np.append(differences, 0.0), rcond=None)[0]
    return bias - np.median(bias[slot_window])


def _zooms(slot_focal: np.ndarray, slots: Slots, n: int, per_frame: str) -> bool:
    """Whether each frame gets its own focal: always ("on"), never ("off"), or when it changes over the shot."""
    return per_frame == "on" or (per_frame == "auto" and
                                 focal_change(slot_focal, slots.window, slots.t, slots.frame, n) > ZOOM_MIN_CHANGE)


def focal_change(slot_focal: np.ndarray, slot_window: np.ndarray, slot_t: np.ndarray, slot_frame: np.ndarray,
                 n: int) -> float:
    """How much the focal length changes over the shot (log, 10th to 90th percentile of the frames).

    Measured inside each window only: a model's focal bias is one per window (it differs between windows but
    not within one), so the windows' disagreement must not read as a zoom. Each window's rate is the Theil-Sen
    slope of its slots' log focal against time (robust to a stray frame); each frame takes the median rate of
    the windows that see it, and the rates are summed over the frames.
    slot_focal, slot_window, slot_t, slot_frame: [S] (pixels; window, index in it and frame of each slot)."""
    log_f = np.log(slot_focal)
    rate = np.zeros(slot_window.max() + 1)
    for g in range(len(rate)):
        mine = np.flatnonzero(slot_window == g)
        a, b = np.triu_indices(len(mine), 1)
        if len(a):
            rate[g] = np.median((log_f[mine[b]] - log_f[mine[a]]) / (slot_t[mine[b]] - slot_t[mine[a]]))
    frame_rate = np.array([np.median(rate[slot_window[slot_frame == i]]) for i in range(n)])
    path = np.concatenate([[0.0], np.cumsum(frame_rate[:-1])])
    return float(np.percentile(path, 90) - np.percentile(path, 10))


def _to_world(poses: WindowPoses, slot_window: np.ndarray, rotation: np.ndarray,
              centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slot cameras (rotation [S, 3, 3], centre [S, 3], window frames) in the world."""
    rot = poses.rotation[slot_window]
    return (rot @ rotation,
            poses.scale[slot_window, None] * np.einsum("sij,sj->si", rot, centre) + poses.translation[slot_window])


def _variance_of_mean(values: np.ndarray, mean: np.ndarray, weight: np.ndarray, frame: np.ndarray,
                      n: int) -> np.ndarray:
    """Variance of each frame's weighted mean [N] from its estimates' spread; nan where only one.

    values: [E, D] per estimate; mean: [N, D] per frame; weight: [E]; frame: [E] frame of each estimate.
    """
    sq = np.zeros(n)
    wsum = np.zeros(n)
    count = np.zeros(n)
    np.add.at(sq, frame, weight * np.sum((values - mean[frame]) ** 2, axis=1))
    np.add.at(wsum, frame, weight)
    np.add.at(count, frame, 1)
    with np.errstate(all="ignore"):
        return np.where(count > 1, sq / wsum / (count - 1), np.nan)
