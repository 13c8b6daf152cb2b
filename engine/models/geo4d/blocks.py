"""Convolutional blocks of the DynamiCrafter 3D UNet: ResBlock with its temporal convolution,
down/upsampling and the sequential container that routes the time embedding and context.

Attribute names (including the official typo `temopral_conv`) and Sequential indices follow
`lvdm/modules/networks/openaimodel3d.py` so that the official state dict loads with strict=True.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import ContextKeysValues, CrossAttention, SpatialTransformer, TemporalTransformer


class GroupNorm32(nn.GroupNorm):
    """GroupNorm(32) computed in float32 whatever the input dtype (the official `normalization`)."""

    def __init__(self, channels: int):
        super().__init__(32, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps).type(x.dtype)


def frames_to_clips(x: torch.Tensor, batch: int) -> torch.Tensor:
    """[(b t), c, h, w] -> [b, c, t, h, w]."""
    n, c, h, w = x.shape
    return x.reshape(batch, n // batch, c, h, w).transpose(1, 2).contiguous()


def clips_to_frames(x: torch.Tensor) -> torch.Tensor:
    """[b, c, t, h, w] -> [(b t), c, h, w]."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w).contiguous()


class TemporalConvBlock(nn.Module):
    """Four (GroupNorm, SiLU, Conv3d 3x1x1) layers along time with a residual. x [b, c, t, h, w]."""

    def __init__(self, channels: int, dropout: float = 0.1):
        super().__init__()

        def layer(with_dropout: bool) -> nn.Sequential:
            parts = [nn.GroupNorm(32, channels), nn.SiLU()]
            if with_dropout:
                parts.append(nn.Dropout(dropout))
            parts.append(nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)))
            return nn.Sequential(*parts)

        self.conv1 = layer(False)
        self.conv2 = layer(True)
        self.conv3 = layer(True)
        self.conv4 = layer(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv4(self.conv3(self.conv2(self.conv1(x))))


class ResBlock(nn.Module):
    """Per-frame residual block conditioned on the time embedding (added after the first conv),
    optionally followed by the temporal conv block. x [(b t), c, h, w], emb [(b t), emb_channels]."""

    def __init__(self, channels: int, emb_channels: int, dropout: float, out_channels: int | None = None,
                 temporal_conv: bool = False):
        super().__init__()
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(GroupNorm32(channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels), nn.SiLU(), nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        self.has_temporal_conv = temporal_conv
        if temporal_conv:
            self.temopral_conv = TemporalConvBlock(out_channels)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, batch: int) -> torch.Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        h = self.skip_connection(x) + self.out_layers(h)
        if self.has_temporal_conv:
            h = clips_to_frames(self.temopral_conv(frames_to_clips(h, batch)))
        return h


class Downsample(nn.Module):
    """Strided 3x3 conv, halves h and w."""

    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest 2x upsampling then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TimestepEmbedSequential(nn.Sequential):
    """Runs its layers in order on [(b t), c, h, w], giving each the inputs it needs: the time
    embedding to ResBlocks, the context's per-frame keys and values (UNet3D) to spatial transformers, and
    the clip layout [b, c, t, h, w] to temporal transformers."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: dict[CrossAttention, ContextKeysValues],
                batch: int) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, batch)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, TemporalTransformer):
                x = clips_to_frames(layer(frames_to_clips(x, batch)))
            else:
                x = layer(x)
        return x
