"""Simulated window predictions: what a Geo4D-like or a GeometryCrafter-like model would say about a
ground-truth sequence.

SIMULATED, not the model. `simulate_windows` (Geo4D-like). Each window of up to L frames gets the exact geometry
in its first camera's frame, then the corruptions a feed-forward geometry model shows:
  - an unknown similarity per window (scale and translation of point map and ray moments; the rotation
    is fixed by the first camera), and an unknown scale and shift of the disparity;
  - depth noise that grows with depth; a smooth low-frequency distortion per window (windows disagree
    slightly); a per-window focal bias (a wrong field of view shared by points and rays);
  - pose noise: each frame's rays, and separately its point map, come from a slightly wrong camera
    (small rotation and centre errors per frame); gross per-pixel outliers;
  - occasionally a badly wrong window (strong distortion and focal error), confident nonetheless;
  - sky (infinite depth) marked invalid; a confidence that tracks the expected error.
`simulate_camera_windows` (GeometryCrafter-like): each frame's point map in its own camera, with an
unknown scale per window (consistent within it, drifting from window to window), the same depth noise,
distortions, focal bias, outliers and bad windows; no poses, no disparity, no rays; a validity mask
(sky invalid) as confidence. Moving objects come from the scene itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..alignment.geometry import axis_angle_to_rotation, pixel_grid
from ..windows.predictions import WindowPredictions
from ..windows.schedule import sliding_starts, window_lengths
from .groundtruth import GroundTruth


@dataclass(frozen=True)
class Corruption:
    """Strength of each corruption; all are relative (dimensionless) unless stated.

    Attributes:
        scale_range: per-window point-map scale, log-uniform in (lo, hi).
        translation: std of the per-window translation, in units of the scene's median depth.
        depth_noise: std of the relative depth error at the median depth; grows linearly with depth
            up to 3x.
        disparity_noise: std of the relative error of the disparity (independent of the point map's).
        distortion: amplitude of a smooth, per-window relative depth distortion (low spatial frequency).
        focal_bias: std of the per-window relative focal error.
        rotation_noise_deg: std of the per-frame camera rotation error (rays; point map independently), degrees.
        centre_noise: std of the per-frame camera centre error (likewise), units of the median depth.
        outlier_fraction: fraction of pixels whose depth is off by a factor of 0.5..2.
        bad_window_probability: chance that a window is badly wrong (5x distortion, 10 % focal error).
    """

    scale_range: tuple[float, float] = (0.5, 2.0)
    translation: float = 0.3
    depth_noise: float = 0.0
    disparity_noise: float = 0.0
    distortion: float = 0.0
    focal_bias: float = 0.0
    rotation_noise_deg: float = 0.0
    centre_noise: float = 0.0
    outlier_fraction: float = 0.0
    bad_window_probability: float = 0.0

    @classmethod
    def none(cls) -> Corruption:
        """Only the ambiguities the format allows (per-window similarity, affine disparity); no noise."""
        return cls()

    @classmethod
    def realistic(cls) -> Corruption:
        """Errors of the size Geo4D-like models show on real footage."""
        return cls(depth_noise=0.03, disparity_noise=0.03, distortion=0.03, focal_bias=0.02,
                   rotation_noise_deg=0.3, centre_noise=0.005, outlier_fraction=0.02,
                   bad_window_probability=0.1)


def _smooth_field(rng: np.random.Generator, h: int, w: int, amplitude: float) -> np.ndarray:
    """A random low-frequency field float[H, W] with values of about +-amplitude."""
    y, x = np.mgrid[0:h, 0:w]
    x, y = x / w, y / h
    field = np.zeros((h, w))
    for _ in range(3):
        fx, fy = rng.uniform(0.3, 1.5, 2)
        field += np.cos(np.pi * (fx * x + fy * y) + rng.uniform(0, 2 * np.pi))
    return amplitude * field / 3.0


def _small_rotation(rng: np.random.Generator, std_deg: float) -> np.ndarray:
    return axis_angle_to_rotation(rng.normal(0.0, np.radians(std_deg), 3))


@dataclass
class _Window:
    """One simulated window's draw: its unknown similarity and disparity map, focal error, distortions."""

    bad: bool
    scale: float
    shift: np.ndarray
    disp_scale: float
    disp_shift: float
    focal_err: float
    distortion: float
    warp: np.ndarray
    warp_disp: np.ndarray


def _draw_window(rng: np.random.Generator, c: Corruption, h: int, w: int, median_depth: float) -> _Window:
    bad = rng.uniform() < c.bad_window_probability
    scale = float(np.exp(rng.uniform(*np.log(c.scale_range))))
    shift = rng.normal(0.0, c.translation * median_depth, 3)
    disp_scale, disp_shift = float(np.exp(rng.uniform(-1, 1))), float(rng.uniform(0.0, 0.2))
    focal_err = rng.normal(0.0, c.focal_bias) + (rng.choice([-0.1, 0.1]) if bad else 0.0)
    distortion = c.distortion * (5.0 if bad else 1.0)
    warp = _smooth_field(rng, h, w, distortion)
    return _Window(bad, scale, shift, disp_scale, disp_shift, focal_err, distortion, warp,
                   _smooth_field(rng, h, w, distortion))


@dataclass
class _Depth:
    """One frame's predicted depth and the error behind it, all float[H, W] (outlier bool)."""

    z: np.ndarray
    sigma: np.ndarray
    warp: np.ndarray
    outlier: np.ndarray


def _noisy_depth(rng: np.random.Generator, c: Corruption, window: _Window, z: np.ndarray, dynamic: np.ndarray,
                 median_depth: float) -> _Depth:
    """z: true depth [H, W] (sky already replaced by a finite value); dynamic: moving-object pixels (noisier)."""
    h, w = z.shape
    sigma = c.depth_noise * np.minimum(z / median_depth, 3.0) * np.where(dynamic, 2.0, 1.0)
    frame_warp = window.warp + _smooth_field(rng, h, w, 0.2 * window.distortion)
    rel_err = sigma * rng.normal(size=(h, w)) + frame_warp
    outlier = rng.uniform(size=(h, w)) < c.outlier_fraction
    rel_err = np.where(outlier, np.exp(rng.uniform(-0.7, 0.7, (h, w))) - 1.0, rel_err)
    return _Depth(z * np.maximum(1.0 + rel_err, 0.05), sigma, frame_warp, outlier)


def _confidence(rng: np.random.Generator, depth: _Depth) -> np.ndarray:
    """The model is unsure where it is noisy and, most of the time, where it is grossly wrong."""
    expected = depth.sigma + 0.2 * np.abs(depth.warp) + 0.01
    knows = depth.outlier & (rng.uniform(size=depth.z.shape) < 0.7)
    return np.where(knows, 0.1, 1.0) * 0.05 / expected


def _camera_rays(k: np.ndarray, focal_err: float, h: int, w: int) -> np.ndarray:
    """Camera-frame rays float[H, W, 3] (z = 1) of every pixel centre, the focal off by `focal_err`."""
    k = k.copy()
    k[0, 0] *= 1.0 + focal_err
    k[1, 1] *= 1.0 + focal_err
    v, u = pixel_grid(h, w)
    return np.stack([u + 0.5, v + 0.5, np.ones((h, w))], axis=-1) @ np.linalg.inv(k).T


def simulate_windows(gt: GroundTruth, stride: int = 4, corruption: Corruption | None = None, seed: int = 0,
                     window_length: int = 16) -> WindowPredictions:
    """Window predictions for `gt` with the given corruptions (reproducible from `seed`)."""
    c = corruption or Corruption.none()
    rng = np.random.default_rng(seed)
    n, (h, w) = gt.num_frames, gt.image_size
    starts = sliding_starts(n, stride, window_length)
    lengths = window_lengths(starts, n, window_length)
    g_count, l = len(starts), window_length
    finite = np.isfinite(gt.depth)
    median_depth = float(np.median(gt.depth[finite]))

    pointmap = np.zeros((g_count, l, h, w, 3), np.float32)
    conf = np.zeros((g_count, l, h, w), np.float32)
    disparity = np.zeros((g_count, l, h, w), np.float32)
    ray_dirs = np.zeros((g_count, l, h, w, 3), np.float32)
    ray_moments = np.zeros((g_count, l, h, w, 3), np.float32)

    for g, (start, length) in enumerate(zip(starts, lengths)):
        world_to_window = np.linalg.inv(gt.camera_to_world[start])
        window = _draw_window(rng, c, h, w, median_depth)
        scale, shift = window.scale, window.shift
        for t in range(length):
            i = start + t
            cam = _camera_rays(gt.K[i], window.focal_err, h, w)
            cam_to_window = world_to_window @ gt.camera_to_world[i]
            rot, centre = cam_to_window[:3, :3], cam_to_window[:3, 3]

            z = gt.depth[i].astype(np.float64)
            sky = ~np.isfinite(z)
            z = np.where(sky, median_depth, z)
            pred = _noisy_depth(rng, c, window, z, gt.dynamic[i], median_depth)
            # The point map's frame is misplaced a little too, independently of the rays.
            points_rot = rot @ _small_rotation(rng, c.rotation_noise_deg)
            points_centre = centre + rng.normal(0.0, c.centre_noise * median_depth, 3)
            points = (cam * pred.z[..., None]) @ points_rot.T + points_centre
            pointmap[g, t] = np.where(sky[..., None], 0.0, scale * points + shift)
            conf[g, t] = np.where(sky, 0.0, _confidence(rng, pred))

            disp_err = c.disparity_noise * rng.normal(size=(h, w)) + window.warp_disp
            disp = window.disp_scale / (z * np.maximum(1.0 + disp_err, 0.05)) + window.disp_shift
            disparity[g, t] = np.where(sky, 0.0, disp)

            noisy_rot = rot @ _small_rotation(rng, c.rotation_noise_deg)
            noisy_centre = centre + rng.normal(0.0, c.centre_noise * median_depth, 3)
            dirs = cam @ noisy_rot.T
            dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
            ray_dirs[g, t] = dirs
            ray_moments[g, t] = np.cross(scale * noisy_centre + shift, dirs)

    return WindowPredictions(
        num_frames=n, fps=gt.fps, image_size=(h, w), window_length=l, window_starts=starts,
        window_lengths=lengths, pointmap=pointmap, pointmap_conf=conf, disparity=disparity,
        ray_dirs=ray_dirs, ray_moments=ray_moments, rgb=gt.rgb, source=f"simulated:{gt.name}",
    )


def simulate_camera_windows(gt: GroundTruth, window_length: int = 32, overlap: int = 8,
                            corruption: Corruption | None = None, seed: int = 0) -> WindowPredictions:
    """GeometryCrafter-like window predictions for `gt`: per-frame camera-space point maps, validity as
    confidence, windows of `window_length` frames overlapping by `overlap` (the real model: 110 and 25).

    Of `corruption`, the per-window scale, depth noise, distortion, focal bias, outliers and bad windows
    apply; the translation, pose noise and disparity noise do not (the model gives no poses or disparity).
    """
    c = corruption or Corruption.none()
    rng = np.random.default_rng(seed)
    n, (h, w) = gt.num_frames, gt.image_size
    starts = sliding_starts(n, window_length - overlap, window_length)
    lengths = window_lengths(starts, n, window_length)
    median_depth = float(np.median(gt.depth[np.isfinite(gt.depth)]))
    pointmap = np.zeros((len(starts), window_length, h, w, 3), np.float32)
    valid = np.zeros((len(starts), window_length, h, w), np.float32)
    for g, (start, length) in enumerate(zip(starts, lengths)):
        window = _draw_window(rng, c, h, w, median_depth)
        for t in range(length):
            i = start + t
            sky = ~np.isfinite(gt.depth[i])
            z = np.where(sky, median_depth, gt.depth[i].astype(np.float64))
            points = _camera_rays(gt.K[i], window.focal_err, h, w) * _noisy_depth(
                rng, c, window, z, gt.dynamic[i], median_depth).z[..., None]
            pointmap[g, t] = np.where(sky[..., None], 0.0, window.scale * points)
            valid[g, t] = ~sky
    return WindowPredictions(
        num_frames=n, fps=gt.fps, image_size=(h, w), window_length=window_length, window_starts=starts,
        window_lengths=lengths, pointmap=pointmap, pointmap_conf=valid, rgb=gt.rgb,
        source=f"simulated:{gt.name}", pointmap_frame="camera",
    )


def misplace_frames(windows: WindowPredictions, frames: list[int], amount: float) -> WindowPredictions:
    """A model failing on some frames: in every window, the point maps of `frames` moved sideways (window x
    axis) by `amount` times their points' median distance from their middle, so that they disagree with the
    rays and the neighbouring frames. Changes `windows` in place and returns it (for the solve-quality check)."""
    for g, (start, length) in enumerate(zip(windows.window_starts, windows.window_lengths)):
        for i in frames:
            t = i - int(start)
            if not 0 <= t < length:
                continue
            valid = windows.pointmap_conf[g, t] > 0
            points = windows.pointmap[g, t][valid]
            spread = float(np.median(np.linalg.norm(points - np.median(points, axis=0), axis=1)))
            windows.pointmap[g, t][valid] += np.array([amount * spread, 0.0, 0.0], np.float32)
    return windows
