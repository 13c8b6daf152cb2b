"""From a denoised Geo4D window latent to per-pixel geometry, as the official demo post-processes it.

The 16 latent channels are four groups of 4: point map, ray directions, ray moments, disparity.
The point-map group goes through the fine-tuned point-map VAE with its uncertainty head; the other
three through the first-stage (SD) VAE. Decoded point maps live in the model's normalised box
(valid when every |coordinate| <= 1.99); `denormalize_pointmap` maps them to x/2, y/2, (z+1)/2.
Everything here is torch, OpenCV axes (x right, y down, z forward) in the window's first-camera
frame, up to scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .vae import AutoencoderKL, decode_frames

POINTMAP, RAY_DIRS, RAY_MOMENTS, DISPARITY = slice(0, 4), slice(4, 8), slice(8, 12), slice(12, 16)

# The demo's validity thresholds (test_geo4d.run_inference).
SKY_VALUE, SKY_EPS = 1.05, 0.35
FAR_AWAY_VALUE = 1.99
INVALID_CONFIDENCE = 999.0


@dataclass
class DecodedWindow:
    """Decoder outputs of one window, each [T, H, W, C] float32 (C = 3 or 1)."""

    xyz: torch.Tensor             # normalised point map
    raw_uncertainty: torch.Tensor  # before softplus
    ray_dirs: torch.Tensor        # not unit length
    ray_moments: torch.Tensor
    disparity: torch.Tensor       # mean of the 3 decoded channels, in [-1, 1]


def decode_window(latent: torch.Tensor, first_stage: AutoencoderKL, pointmap_vae: AutoencoderKL,
                  scale_factor: float, chunk: int | None = None, channels_last: bool | None = None,
                  upsample: str | None = None) -> DecodedWindow:
    """latent [1, 16, T, h, w] (diffusion space) -> DecodedWindow at [T, 8h, 8w]; `chunk`, `channels_last`
    and `upsample` as vae.decode_frames (None: the device's choice)."""
    if latent.shape[0] != 1 or latent.shape[1] != 16:
        raise ValueError(f"expected a [1, 16, T, h, w] window latent, got {tuple(latent.shape)}")

    _, _, t, h, w = latent.shape
    pm = _thwc(decode_frames(pointmap_vae, latent[:, POINTMAP], scale_factor, chunk, True, channels_last,
                             upsample))
    # The other three groups share the first-stage VAE: decode them as one batch of 3 videos.
    rays_moments_disparity = decode_frames(first_stage, latent[0, RAY_DIRS.start:].reshape(3, 4, t, h, w),
                                           scale_factor, chunk, False, channels_last, upsample)
    dirs, moments, disparity = (_thwc(video[None]) for video in rays_moments_disparity)
    return DecodedWindow(xyz=pm[..., :3], raw_uncertainty=pm[..., 3:4], ray_dirs=dirs, ray_moments=moments,
                         disparity=disparity.mean(-1, keepdim=True))


def _thwc(video: torch.Tensor) -> torch.Tensor:
    """[1, C, T, H, W] -> [T, H, W, C]."""
    return video[0].permute(1, 2, 3, 0)


def sky_mask(xyz: torch.Tensor, sky_value: float = SKY_VALUE, eps: float = SKY_EPS) -> torch.Tensor:
    """[..., 3] -> bool [..., 1]: all three coordinates strictly inside (sky_value ± eps); the model
    paints sky at about (1.05, 1.05, 1.05)."""
    inside = (xyz > sky_value - eps) & (xyz < sky_value + eps)
    return inside.all(dim=-1, keepdim=True)


def far_away_mask(xyz: torch.Tensor, far_away_value: float = FAR_AWAY_VALUE) -> torch.Tensor:
    """[..., 3] -> bool [..., 1]: any |coordinate| beyond the normalised box."""
    return (xyz.abs() > far_away_value).any(dim=-1, keepdim=True)


def denormalize_pointmap(xyz: torch.Tensor, alpha: float = 2.0, beta: float = 2.0) -> torch.Tensor:
    """Undo the training normalisation: x/alpha, y/beta, (z+1)/2."""
    return torch.stack([xyz[..., 0] / alpha, xyz[..., 1] / beta, (xyz[..., 2] + 1) / 2], dim=-1)


@dataclass
class WindowGeometry:
    """The demo's per-window outputs, frames of the window first."""

    pts3d: torch.Tensor            # [T, H, W, 3] denormalised point map, first-camera frame
    conf: torch.Tensor             # [T, H, W, 1] 1/confidence, 0 where invalid (the demo's pred['conf'])
    confidence: torch.Tensor       # [T, H, W, 1] softplus(raw), 999 where invalid
    valid: torch.Tensor            # bool [T, H, W, 1]
    sky: torch.Tensor              # bool [T, H, W, 1]
    far_away: torch.Tensor         # bool [T, H, W, 1]
    ray_dirs: torch.Tensor         # [T, H, W, 3] as decoded
    ray_moments: torch.Tensor      # [T, H, W, 3] as decoded
    inverse_depth: torch.Tensor    # [T, H, W, 1] (disparity + 1) / 2, affine-invariant


def window_geometry(decoded: DecodedWindow) -> WindowGeometry:
    sky = sky_mask(decoded.xyz)
    far = far_away_mask(decoded.xyz)
    invalid = sky | far
    confidence = F.softplus(decoded.raw_uncertainty).masked_fill(invalid, INVALID_CONFIDENCE)
    conf = (1.0 / confidence).masked_fill(invalid, 0.0)
    return WindowGeometry(
        pts3d=denormalize_pointmap(decoded.xyz), conf=conf, confidence=confidence, valid=~invalid,
        sky=sky, far_away=far, ray_dirs=decoded.ray_dirs, ray_moments=decoded.ray_moments,
        inverse_depth=(decoded.disparity + 1.0) / 2.0)
