"""Building blocks shared by Stable Video Diffusion's UNet and its temporal VAE decoder (diffusers
0.31 `models/resnet.py`, `embeddings.py`, `downsampling.py`, `upsampling.py`), for inference.

Attribute names follow diffusers so that the official state dicts load with strict=True.
Nearest 2x upsampling + 3x3 conv is Geo4D's `blocks.Upsample` (same math, same `conv` key).
Layouts: 2-D blocks take per-frame tensors `[(b t), c, h, w]`; temporal blocks take clips
`[b, c, t, h, w]`. Videos are never image batches here, so diffusers' `image_only_indicator`
is always zero and the learned blends are `sigmoid(mix_factor)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..geo4d.unet import timestep_embedding


class SinusoidalEmbedding(nn.Module):
    """diffusers `Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0)`: [N] -> [N, dim]
    float32, cos of the frequencies first (the same embedding as Geo4D's)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return timestep_embedding(values, self.dim)


class TimestepEmbedding(nn.Module):
    """Linear, SiLU, Linear (diffusers `TimestepEmbedding`)."""

    def __init__(self, in_channels: int, embed_dim: int, out_dim: int | None = None):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(embed_dim, out_dim or embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    """Per-frame residual block; the time embedding (when given) is added after the first conv.
    x [N, in, h, w], temb [N, temb_channels] or None -> [N, out, h, w]."""

    def __init__(self, in_channels: int, out_channels: int | None = None, temb_channels: int | None = 512,
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
        # In place where the tensor is this block's own temporary (the same numbers, fewer full-size tensors).
        h = self.conv1(F.silu(self.norm1(x), inplace=True))
        if self.time_emb_proj is not None and temb is not None:
            h += self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = F.silu(self.norm2(h), inplace=True)  # conv1's output released before conv2 allocates its own
        h = self.conv2(h)
        h += x if self.conv_shortcut is None else self.conv_shortcut(x)
        return h


class TemporalResnetBlock(nn.Module):
    """The same residual block with (3, 1, 1) convolutions along time. x [b, c, t, h, w],
    temb [b, t, temb_channels] or None."""

    def __init__(self, in_channels: int, out_channels: int | None = None, temb_channels: int | None = 512,
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
        h = self.conv1(F.silu(self.norm1(x), inplace=True))
        if self.time_emb_proj is not None and temb is not None:
            h += self.time_emb_proj(F.silu(temb)).permute(0, 2, 1)[:, :, :, None, None]
        h = F.silu(self.norm2(h), inplace=True)  # conv1's output released before conv2 allocates its own
        h = self.conv2(h)
        # Out of place: the sum takes the layout of x (frames first), so the clip turns back into frames as a view.
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class AlphaBlender(nn.Module):
    """alpha * spatial + (1 - alpha) * temporal with alpha = sigmoid(mix_factor) (the "learned" and
    "learned_with_images" strategies on video input); `switch` swaps the roles (the VAE decoder's
    `switch_spatial_to_temporal_mix`)."""

    def __init__(self, alpha: float = 0.5, switch: bool = False):
        super().__init__()
        self.mix_factor = nn.Parameter(torch.tensor([alpha]))
        self.switch = switch

    def forward(self, spatial: torch.Tensor, temporal: torch.Tensor) -> torch.Tensor:
        """`temporal` is overwritten with the result (callers pass their own temporary)."""
        alpha = torch.sigmoid(self.mix_factor).to(spatial.dtype)
        if self.switch:
            alpha = 1.0 - alpha
        # (1 - alpha) * temporal + alpha * spatial: the same sum as the official's, one full-size temporary.
        return temporal.mul_(1.0 - alpha).add_(alpha * spatial)


def frames_to_clips(x: torch.Tensor, frames: int) -> torch.Tensor:
    """[(b t), c, h, w] -> [b, c, t, h, w] (a view)."""
    n, c, h, w = x.shape
    return x.reshape(n // frames, frames, c, h, w).permute(0, 2, 1, 3, 4)


def clips_to_frames(x: torch.Tensor) -> torch.Tensor:
    """[b, c, t, h, w] -> [(b t), c, h, w]."""
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


class SpatioTemporalResBlock(nn.Module):
    """A per-frame ResnetBlock2D, then a TemporalResnetBlock over each clip, blended by an
    AlphaBlender (diffusers `SpatioTemporalResBlock`). x [(b t), c, h, w], temb [(b t), E] or None."""

    def __init__(self, in_channels: int, out_channels: int | None = None, temb_channels: int | None = 512,
                 eps: float = 1e-6, temporal_eps: float | None = None, merge_factor: float = 0.5,
                 switch_spatial_to_temporal_mix: bool = False):
        super().__init__()
        out_channels = out_channels or in_channels
        self.spatial_res_block = ResnetBlock2D(in_channels, out_channels, temb_channels, eps)
        self.temporal_res_block = TemporalResnetBlock(
            out_channels, out_channels, temb_channels, eps if temporal_eps is None else temporal_eps)
        self.time_mixer = AlphaBlender(merge_factor, switch_spatial_to_temporal_mix)

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None, frames: int) -> torch.Tensor:
        spatial = frames_to_clips(self.spatial_res_block(x, temb), frames)
        if temb is not None:
            temb = temb.reshape(spatial.shape[0], frames, -1)
        temporal = self.temporal_res_block(spatial, temb)
        return clips_to_frames(self.time_mixer(spatial, temporal))


class Downsample2D(nn.Module):
    """Strided 3x3 conv (padding 1), halving h and w."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

