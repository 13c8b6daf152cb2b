"""Residual blocks of Stable Video Diffusion (diffusers `models/resnet.py`), shared by the SVD VAE,
the point-map VAE and the spatio-temporal UNet.

Attribute names follow diffusers so that the official state dicts load with strict=True.
Layouts: 2-D blocks take frames `[(b t), c, h, w]`; temporal blocks take clips `[b, c, t, h, w]`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def frames_to_clips(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """[(b t), c, h, w] -> [b, c, t, h, w]."""
    n, c, h, w = x.shape
    return x.reshape(n // num_frames, num_frames, c, h, w).permute(0, 2, 1, 3, 4)


def clips_to_frames(x: torch.Tensor) -> torch.Tensor:
    """[b, c, t, h, w] -> [(b t), c, h, w]."""
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


class ResnetBlock2D(nn.Module):
    """Per-frame residual block; the time embedding (if any) is added after the first conv.
    x [N, cin, h, w], temb [N, temb_channels] or None."""

    def __init__(self, in_channels: int, out_channels: int | None = None, temb_channels: int | None = None,
                 eps: float = 1e-6, groups: int = 32):
        super().__init__()
        out_channels = out_channels or in_channels
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels) if temb_channels is not None else None
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None and temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class TemporalResnetBlock(nn.Module):
    """Residual block of (3, 1, 1) convolutions along time. x [b, c, t, h, w], temb [b, t, temb_channels]."""

    def __init__(self, in_channels: int, out_channels: int | None = None, temb_channels: int | None = None,
                 eps: float = 1e-6):
        super().__init__()
        out_channels = out_channels or in_channels
        self.norm1 = nn.GroupNorm(32, in_channels, eps=eps)
        self.conv1 = nn.Conv3d(in_channels, out_channels, (3, 1, 1), padding=(1, 0, 0))
        self.time_emb_proj = nn.Linear(temb_channels, out_channels) if temb_channels is not None else None
        self.norm2 = nn.GroupNorm(32, out_channels, eps=eps)
        self.conv2 = nn.Conv3d(out_channels, out_channels, (3, 1, 1), padding=(1, 0, 0))
        self.conv_shortcut = nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None and temb is not None:
            h = h + self.time_emb_proj(F.silu(temb)).permute(0, 2, 1)[:, :, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class AlphaBlender(nn.Module):
    """Learned mix of the spatial and the temporal branch: a·spatial + (1−a)·temporal, a = sigmoid(mix_factor).

    "learned_with_images" (UNet) forces a = 1 on frames flagged as images; "learned" (VAE decoders)
    ignores the flags. `switch` (the VAE decoders' switch_spatial_to_temporal_mix) uses 1−a instead."""

    def __init__(self, alpha: float, merge_strategy: str, switch: bool = False):
        super().__init__()
        if merge_strategy not in ("learned", "learned_with_images"):
            raise ValueError(f"unsupported merge strategy {merge_strategy!r}")
        self.merge_strategy = merge_strategy
        self.switch = switch
        self.mix_factor = nn.Parameter(torch.tensor([float(alpha)]))

    def forward(self, x_spatial: torch.Tensor, x_temporal: torch.Tensor,
                image_only_indicator: torch.Tensor | None = None) -> torch.Tensor:
        alpha = torch.sigmoid(self.mix_factor)
        if self.merge_strategy == "learned_with_images":
            alpha = torch.where(image_only_indicator.bool(), torch.ones_like(alpha), alpha)  # [b, t]
            alpha = alpha[:, None, :, None, None] if x_spatial.ndim == 5 else alpha.reshape(-1)[:, None, None]
        alpha = alpha.to(x_spatial.dtype)
        if self.switch:
            alpha = 1.0 - alpha
        return alpha * x_spatial + (1.0 - alpha) * x_temporal


class SpatioTemporalResBlock(nn.Module):
    """A ResnetBlock2D per frame, then a TemporalResnetBlock along each clip, blended by an AlphaBlender.
    x [(b t), c, h, w]; temb [(b t), temb_channels] or None; image_only_indicator [b, t] gives t."""

    def __init__(self, in_channels: int, out_channels: int | None = None, temb_channels: int | None = None,
                 eps: float = 1e-6, temporal_eps: float | None = None, merge_factor: float = 0.5,
                 merge_strategy: str = "learned_with_images", switch_spatial_to_temporal_mix: bool = False):
        super().__init__()
        out_channels = out_channels or in_channels
        self.spatial_res_block = ResnetBlock2D(in_channels, out_channels, temb_channels, eps=eps)
        self.temporal_res_block = TemporalResnetBlock(out_channels, out_channels, temb_channels,
                                                      eps=eps if temporal_eps is None else temporal_eps)
        self.time_mixer = AlphaBlender(merge_factor, merge_strategy, switch_spatial_to_temporal_mix)

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None, image_only_indicator: torch.Tensor) -> torch.Tensor:
        num_frames = image_only_indicator.shape[-1]
        x = self.spatial_res_block(x, temb)
        spatial = frames_to_clips(x, num_frames)
        if temb is not None:
            temb = temb.reshape(spatial.shape[0], num_frames, -1)
        temporal = self.temporal_res_block(spatial, temb)
        return clips_to_frames(self.time_mixer(spatial, temporal, image_only_indicator))


class Downsample2D(nn.Module):
    """Stride-2 3x3 conv. padding 0 means diffusers' VAE convention: zero padding on the right and bottom only."""

    def __init__(self, channels: int, padding: int = 1):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    """Nearest 2x (or to `output_size`) upsampling, then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, output_size: tuple[int, int] | None = None) -> torch.Tensor:
        if output_size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=output_size, mode="nearest")
        return self.conv(x)
