"""The multi-modal alignment: sliding-window predictions -> one camera track and one depth per frame.

Steps (docs/alignment.md explains the choices):
  1. cameras of every window slot in its window's frame, from the rays (focal by DLT, rotation by
     Kabsch, centre by ray intersection) averaged with those from the point map (a reweighted DLT);
  2. the focal length: one for the clip (median over slots), or one per frame (zoom shots);
  3. one similarity per window to the world (poses.py): rotation averaging, then scales and
     translations from the points and centres the windows share, robustly reweighted;
  4. per frame, the cameras of all windows that see it are averaged, then smoothed over time;
  5. per frame, depth from every window's point map and disparity, fused robustly (depth.py).
World = the first camera; the scale is the first window's.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import InputError
from ..formats.bundle import Reconstruction
from ..windows.predictions import WindowPredictions
from ..reporting import Progress
from .cameras import (SlotCameras, cameras_from_points, centre_from_rays, focal_from_rays, fuse_cameras,
                      rotation_from_rays)
from .depth import DisparityFit, fit_disparity, fuse_depths
from .geometry import intrinsics, project_to_rotation, sample_pixels
from .poses import WindowPoses, slot_pairs, smooth_trajectory, window_rotations, window_scales, window_translations

CENTRE_WEIGHT = 10.0  # a camera centre counts as 10x all sampled pixels of its frame: rays locate it
# better than a smoothly distorted point map does
ADJACENT_WEIGHT = 0.1  # pairs of adjacent (not shared) frames are only approximately the same camera


@dataclass
class AlignOptions:
    """Settings of `align`.

    per_frame_focal: one focal length per frame (zoom shots) instead of one for the clip.
    use_rays: cameras from the ray maps and the point maps; False: from the point maps alone (ablation).
    use_disparity: fuse the disparity maps into the depth; False uses the point maps only (ablation).
    robust: reweight disagreeing windows and drop outlying depth estimates; False = plain least squares.
    smoothness: temporal smoothness of the camera track (0 = none): a frame's velocity is expected to
        change by about 1/smoothness of a typical step; applied in proportion to the windows' disagreement.
    pose_pixels: pixels sampled per frame for the pose solve.
    outlier_threshold: depth estimates further than this many robust deviations from the median are dropped.
    """

    per_frame_focal: bool = False
    use_rays: bool = True
    use_disparity: bool = True
    robust: bool = True
    smoothness: float = 30.0
    pose_pixels: int = 256
    outlier_threshold: float = 3.0


def align(windows: WindowPredictions, options: AlignOptions | None = None,
          progress: Progress | None = None) -> Reconstruction:
    """Fuse the windows of a clip into cameras, intrinsics and depth for each of its frames."""
    opts = options or AlignOptions()
    report = progress or (lambda stage, fraction: None)
    started = time.perf_counter()
    windows.validate()
    n, (h, w) = windows.num_frames, windows.image_size
    slot_window = np.concatenate([np.full(length, g) for g, length in enumerate(windows.window_lengths)])
    slot_t = np.concatenate([np.arange(length) for length in windows.window_lengths])
    slot_frame = windows.window_starts[slot_window] + slot_t
    num_windows = windows.num_windows

    report("cameras", 0.0)
    v, u, pixels = sample_pixels(h, w, opts.pose_pixels)
    sw, st = slot_window[:, None], slot_t[:, None]
    points = windows.pointmap[sw, st, v, u].astype(np.float64)
    conf = windows.pointmap_conf[sw, st, v, u].astype(np.float64)
    from_points = cameras_from_points(points, conf, pixels)
    if opts.use_rays:
        dirs = windows.ray_dirs[sw, st, v, u].astype(np.float64)
        dirs /= np.maximum(np.linalg.norm(dirs, axis=2, keepdims=True), 1e-12)  # other writers may not normalise
        ray_focal = focal_from_rays(dirs, pixels)
        focal = _frame_focal(ray_focal, slot_frame, n, opts.per_frame_focal)  # rays measure it most directly
        from_rays = SlotCameras(rotation=rotation_from_rays(dirs, pixels, focal[slot_frame]),
                                centre=centre_from_rays(dirs, windows.ray_moments[sw, st, v, u].astype(np.float64)),
                                focal=ray_focal)
        cameras = fuse_cameras(from_rays, from_points)
        sources = [from_rays, from_points]
    else:
        lacking = np.isnan(from_points.focal)
        if lacking.any():
            s = int(np.flatnonzero(lacking)[0])
            raise InputError(f"frame {slot_frame[s]} has too few valid points in window {slot_window[s]} to place "
                             "its camera from the point map alone", "align with the rays (drop --no-rays)")
        focal = _frame_focal(from_points.focal, slot_frame, n, opts.per_frame_focal)
        cameras = from_points
        sources = [from_points]
    rotation, centre = cameras.rotation, cameras.centre
    depth = np.einsum("spi,si->sp", points - centre[:, None], rotation[:, :, 2])
    usable = (conf > 0) & (depth > 0)

    report("poses", 0.3)
    pairs = slot_pairs(slot_window, slot_frame)
    ga, gb = slot_window[pairs.a], slot_window[pairs.b]
    both = usable[pairs.a] & usable[pairs.b]
    pair_w = np.where(both, np.sqrt(conf[pairs.a] * conf[pairs.b]), 0.0)
    pair_w *= np.where(pairs.adjacent, ADJACENT_WEIGHT, 1.0)[:, None]
    centre_w = CENTRE_WEIGHT * pair_w.sum(axis=1, keepdims=True)
    frame_depth = np.sort(np.where(both, depth[pairs.a], np.inf), axis=1)[np.arange(len(ga)), both.sum(axis=1) // 2]
    centre_w = np.where(np.isfinite(frame_depth), centre_w[:, 0], 0.0)[:, None]
    window_weight = np.ones(num_windows)
    # Solve once; if some windows disagree, solve again with them down-weighted everywhere.
    for _ in range(2 if opts.robust else 1):
        window_rot = window_rotations(rotation, slot_window, pairs, num_windows, window_weight, opts.robust)
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

    report("cameras", 0.6)
    world_rot, world_centre = _to_world(poses, slot_window, rotation, centre)
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
    per_source = [_to_world(poses, slot_window, np.nan_to_num(c.rotation), np.nan_to_num(c.centre)) for c in sources]
    frames_all = np.concatenate([slot_frame] * len(sources))
    weights_all = np.concatenate([slot_w * ~np.isnan(c.focal) for c in sources])
    rot_var = _variance_of_mean(np.concatenate([r for r, _ in per_source]).reshape(-1, 9),
                                frame_rot.reshape(-1, 9), weights_all, frames_all, n)
    centre_var = _variance_of_mean(np.concatenate([c for _, c in per_source]), frame_centre, weights_all,
                                   frames_all, n)
    frame_rot, frame_centre = smooth_trajectory(frame_rot, frame_centre, rot_var, centre_var, opts.smoothness)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3], c2w[:, :3, 3] = frame_rot, frame_centre
    c2w = np.linalg.inv(c2w[0]) @ c2w

    report("depth", 0.7)
    disparity_fit = [DisparityFit()] * num_windows
    if opts.use_disparity:
        disp = windows.disparity[sw, st, v, u].astype(np.float64)
        for g in range(num_windows):
            mine = slot_window == g
            disparity_fit[g] = fit_disparity(disp[mine].ravel(), (depth[mine] * poses.scale[g]).ravel(),
                                             np.where(usable[mine], conf[mine], 0.0).ravel())
    fused = np.zeros((n, h, w), np.float32)
    confidence = np.zeros((n, h, w), np.float32)
    for i in range(n):
        estimates, weights = [], []
        for s in np.flatnonzero(slot_frame == i):
            g, t = slot_window[s], slot_t[s]
            c = windows.pointmap_conf[g, t] * poses.weight[g]
            z = (windows.pointmap[g, t] - centre[s].astype(np.float32)) @ rotation[s][:, 2].astype(np.float32)
            estimates.append(z * poses.scale[g])
            weights.append(c)
            if opts.use_disparity:
                estimates.append(disparity_fit[g].depth(windows.disparity[g, t]))
                weights.append(c)
        fused[i], confidence[i] = fuse_depths(np.stack(estimates), np.stack(weights), opts.outlier_threshold,
                                              opts.robust)
        report("depth", 0.7 + 0.3 * (i + 1) / n)

    return Reconstruction(
        frames=np.arange(n, dtype=np.int64), fps=windows.fps, K=intrinsics(focal, h, w), camera_to_world=c2w,
        depth=fused, confidence=confidence, rgb=windows.rgb, source_clip=windows.source,
        metadata={"alignment": {
            "method": "parallax multi-modal v1", "options": asdict(opts),
            "window_weights": [round(float(x), 4) for x in poses.weight],
            "down_weighted_windows": [int(g) for g in np.flatnonzero(poses.weight < 0.5)],
            "seconds": round(time.perf_counter() - started, 3),
        }},
    )


def down_weighted_note(windows: WindowPredictions, recon: Reconstruction) -> str | None:
    """A sentence for the artist naming the clip frames of the windows the alignment down-weighted
    (they disagreed with the others: a moving object, a cut, a model failure), or None."""
    dropped = recon.metadata["alignment"]["down_weighted_windows"]
    if not dropped:
        return None
    spans = ", ".join(f"{recon.frames[s]}-{recon.frames[s + n - 1]}"
                      for s, n in zip(windows.window_starts[dropped], windows.window_lengths[dropped]))
    return (f"{len(dropped)} of {windows.num_windows} windows disagreed with the others and were down-weighted "
            f"(clip frames {spans}); check the camera there")


def _frame_focal(slot_focal: np.ndarray, slot_frame: np.ndarray, n: int, per_frame: bool) -> np.ndarray:
    """Focal length of each frame [N]: the median over all slots, or over each frame's slots."""
    if not per_frame:
        return np.full(n, float(np.median(slot_focal)))
    return np.array([np.median(slot_focal[slot_frame == i]) for i in range(n)])


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
