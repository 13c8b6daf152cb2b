"""Simulated window predictions: what a Geo4D-like model would say about a ground-truth sequence.

SIMULATED, not the model. Each window of up to L frames gets the exact geometry in its first camera's
frame, then the corruptions a feed-forward geometry model shows:
  - an unknown similarity per window (scale and translation of point map and ray moments; the rotation
    is fixed by the first camera), and an unknown scale and shift of the disparity;
  - depth noise that grows with depth; a smooth low-frequency distortion per window (windows disagree
    slightly); a per-window focal bias (a wrong field of view shared by points and rays);
  - pose noise: each frame's rays, and separately its point map, come from a slightly wrong camera
    (small rotation and centre errors per frame); gross per-pixel outliers;
  - occasionally a badly wrong window (strong distortion and focal error), confident nonetheless;
  - sky (infinite depth) marked invalid; a confidence that tracks the expected error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..alignment.geometry import pixel_grid
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
    axis_angle = rng.normal(0.0, np.radians(std_deg), 3)
    angle = np.linalg.norm(axis_angle)
    if angle == 0:
        return np.eye(3)
    k = axis_angle / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


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
    v, u = pixel_grid(h, w)
    pix = np.stack([u + 0.5, v + 0.5, np.ones((h, w))], axis=-1)

    for g, (start, length) in enumerate(zip(starts, lengths)):
        world_to_window = np.linalg.inv(gt.camera_to_world[start])
        bad = rng.uniform() < c.bad_window_probability
        scale = float(np.exp(rng.uniform(*np.log(c.scale_range))))
        shift = rng.normal(0.0, c.translation * median_depth, 3)
        disp_scale, disp_shift = float(np.exp(rng.uniform(-1, 1))), float(rng.uniform(0.0, 0.2))
        focal_err = rng.normal(0.0, c.focal_bias) + (rng.choice([-0.1, 0.1]) if bad else 0.0)
        distortion_amp = c.distortion * (5.0 if bad else 1.0)
        warp = _smooth_field(rng, h, w, distortion_amp)
        warp_disp = _smooth_field(rng, h, w, distortion_amp)
        for t in range(length):
            i = start + t
            k = gt.K[i].copy()
            k[0, 0] *= 1.0 + focal_err
            k[1, 1] *= 1.0 + focal_err
            cam = pix @ np.linalg.inv(k).T  # [H, W, 3], z = 1
            cam_to_window = world_to_window @ gt.camera_to_world[i]
            rot, centre = cam_to_window[:3, :3], cam_to_window[:3, 3]

            z = gt.depth[i].astype(np.float64)
            sky = ~np.isfinite(z)
            z = np.where(sky, median_depth, z)
            sigma = c.depth_noise * np.minimum(z / median_depth, 3.0) * np.where(gt.dynamic[i], 2.0, 1.0)
            frame_warp = warp + _smooth_field(rng, h, w, 0.2 * distortion_amp)
            rel_err = sigma * rng.normal(size=(h, w)) + frame_warp
            outlier = rng.uniform(size=(h, w)) < c.outlier_fraction
            rel_err = np.where(outlier, np.exp(rng.uniform(-0.7, 0.7, (h, w))) - 1.0, rel_err)
            z_pred = z * np.maximum(1.0 + rel_err, 0.05)
            # The point map's frame is misplaced a little too, independently of the rays.
            points_rot = rot @ _small_rotation(rng, c.rotation_noise_deg)
            points_centre = centre + rng.normal(0.0, c.centre_noise * median_depth, 3)
            points = (cam * z_pred[..., None]) @ points_rot.T + points_centre
            pointmap[g, t] = np.where(sky[..., None], 0.0, scale * points + shift)
            # The model is unsure where it is noisy and, most of the time, where it is grossly wrong.
            expected = sigma + 0.2 * np.abs(frame_warp) + 0.01
            knows = outlier & (rng.uniform(size=(h, w)) < 0.7)
            conf[g, t] = np.where(sky, 0.0, np.where(knows, 0.1, 1.0) * 0.05 / expected)

            disp_err = c.disparity_noise * rng.normal(size=(h, w)) + warp_disp
            disp = disp_scale / (z * np.maximum(1.0 + disp_err, 0.05)) + disp_shift
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
