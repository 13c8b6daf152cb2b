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
                  scale_factor: float, chunk: int = 4) -> DecodedWindow:
    """latent [1, 16, T, h, w] (diffusion space) -> DecodedWindow at [T, 8h, 8w]."""
    if latent.shape[0] != 1 or latent.shape[1] != 16:
        raise ValueError(f"expected a [1, 16, T, h, w] window latent, got {tuple(latent.shape)}")

    _, _, t, h, w = latent.shape
    pm = _thwc(decode_frames(pointmap_vae, latent[:, POINTMAP], scale_factor, chunk, with_confidence=True))
    # The other three groups share the first-stage VAE: decode them as one batch of 3 videos.
    rays_moments_disparity = decode_frames(first_stage, latent[0, RAY_DIRS.start:].reshape(3, 4, t, h, w),
                                           scale_factor, chunk)
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


def normalize_depth(depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """How training mapped a [T, H, W] depth/disparity clip into the VAE's [-1, 1] range (min - 0.01
    and max + 0.01 to -1 and 1), repeated to 3 channels. Returns ([T, H, W, 3], scale, lower)."""
    lower = depth.min() - 0.01
    scale = depth.max() + 0.01 - lower
    normed = (depth - lower) / scale * 2.0 - 1.0
    return normed[..., None].repeat(1, 1, 1, 3), scale, lower


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


@dataclass
class PluckerCameras:
    """Cameras solved from a window's Plücker ray maps (frame 0's rays are the reference)."""

    R: torch.Tensor        # [T, 3, 3] camera-to-world rotation relative to frame 0 (R_i R_0^T)
    centers: torch.Tensor  # [T, 3] camera centres, the rays' least-squares intersection
    rays: torch.Tensor     # [T, P, 6] the square, resized rays used: unit directions, moments

    @property
    def T(self) -> torch.Tensor:
        """[T, 3] world-to-camera translation in the row-vector convention: -R^T c."""
        return -(self.R.transpose(1, 2) @ self.centers[..., None])[..., 0]

    @property
    def c2w(self) -> torch.Tensor:
        """[T, 4, 4] = [R | centre]."""
        out = torch.eye(4, dtype=self.R.dtype, device=self.R.device).repeat(len(self.R), 1, 1)
        out[:, :3, :3] = self.R
        out[:, :3, 3] = self.centers
        return out


def cameras_from_plucker(ray_dirs: torch.Tensor, ray_moments: torch.Tensor) -> PluckerCameras:
    """ray_dirs, ray_moments [T, H, W, 3] -> cameras, the way Geo4D's demo reads its ray maps:
    centre-crop the longer side to a square, nearest-resize to (min, min), then per frame a
    Procrustes rotation between its unit directions and frame 0's, and the centre as the point
    closest to all rays."""
    dirs, moments = _square(ray_dirs), _square(ray_moments)
    t = dirs.shape[0]
    dirs = dirs.reshape(t, -1, 3)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    moments = moments.reshape(t, -1, 3)
    R = _procrustes(dirs[:1].expand_as(dirs), dirs)
    centers = _closest_point_to_lines(torch.cross(dirs, moments, dim=-1), dirs)
    return PluckerCameras(R=R, centers=centers, rays=torch.cat([dirs, moments], dim=-1))


def _square(x: torch.Tensor) -> torch.Tensor:
    """[T, H, W, C] -> [T, S, S, C], S = min(H, W): centre crop of (long - short) // 2 on each side
    of the long axis, then a nearest resize (absorbs the odd pixel)."""
    _, h, w, _ = x.shape
    s = min(h, w)
    if h > w:
        c = (h - w) // 2
        x = x[:, c:h - c]
    elif w > h:
        c = (w - h) // 2
        x = x[:, :, c:w - c]
    return F.interpolate(x.permute(0, 3, 1, 2), (s, s), mode="nearest").permute(0, 2, 3, 1)


def _procrustes(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """[T, P, 3] each -> R [T, 3, 3] minimising ||target - source @ R||, with det(R) = +1."""
    u, _, vh = torch.linalg.svd(source.transpose(1, 2) @ target)
    sign = torch.sign(torch.linalg.det(u @ vh))
    d = torch.ones_like(u[:, 0])
    d[:, 2] = sign
    return u @ (d[..., None] * vh)


def _closest_point_to_lines(points: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Points on lines and unit directions [T, P, 3] -> [T, 3] minimising the summed squared
    distance to the lines: sum_j (I - d_j d_j^T) c = sum_j (I - d_j d_j^T) p_j."""
    proj = torch.eye(3, dtype=dirs.dtype, device=dirs.device) - dirs[..., :, None] * dirs[..., None, :]
    lhs = proj.sum(dim=1)
    rhs = (proj @ points[..., None]).sum(dim=1)
    return torch.linalg.lstsq(lhs, rhs).solution[..., 0]
