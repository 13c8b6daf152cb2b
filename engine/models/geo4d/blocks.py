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
    """GroupNorm(32) computed in float32 whatever the input dtype (the official `normalization`).

    A bfloat16 module on the CPU runs torch's own bfloat16 kernel, which already computes in float32
    (statistics and affine; only its output is rounded, as the official's `.type(x.dtype)` rounds it):
    equal up to the order of the sums, without converting the whole tensor there and back."""

    def __init__(self, channels: int):
        super().__init__(32, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype == torch.bfloat16 and x.device.type == "cpu":
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
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
    """Four (GroupNorm, SiLU, Conv3d 3x1x1) layers along time with a residual. x [b, c, t, h, w].
    `spatial_aware` (the official tempspatial_aware): the kernels of layers 1 and 3 are 3x3x1 (time and
    height) and those of layers 2 and 4 are 3x1x3 (time and width), each padded to keep the size."""

    def __init__(self, channels: int, dropout: float = 0.1, spatial_aware: bool = False):
        super().__init__()

        def layer(with_dropout: bool, kernel: tuple[int, int, int]) -> nn.Sequential:
            parts = [nn.GroupNorm(32, channels), nn.SiLU()]
            if with_dropout:
                parts.append(nn.Dropout(dropout))
            parts.append(nn.Conv3d(channels, channels, kernel, padding=tuple(k // 2 for k in kernel)))
            return nn.Sequential(*parts)

        height, width = ((3, 3, 1), (3, 1, 3)) if spatial_aware else ((3, 1, 1), (3, 1, 1))
        self.conv1 = layer(False, height)
        self.conv2 = layer(True, width)
        self.conv3 = layer(True, height)
        self.conv4 = layer(True, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv4(self.conv3(self.conv2(self.conv1(x))))


class ResBlock(nn.Module):
    """Per-frame residual block conditioned on the time embedding (added after the first conv, or with
    `scale_shift_norm` a FiLM of the second norm's output: norm(h) * (1 + scale) + shift), optionally
    followed by the temporal conv block. x [(b t), c, h, w], emb [(b t), emb_channels].

    `resample` (the official resblock_updown's up or down block: nn.Upsample or nn.AvgPool2d, no weights)
    resizes both paths: the main one after the first norm and SiLU, before its conv."""

    def __init__(self, channels: int, emb_channels: int, dropout: float, out_channels: int | None = None,
                 temporal_conv: bool = False, scale_shift_norm: bool = False, resample: nn.Module | None = None,
                 spatial_aware: bool = False):
        super().__init__()
        self.resample = resample
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(GroupNorm32(channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.scale_shift_norm = scale_shift_norm
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if scale_shift_norm else out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels), nn.SiLU(), nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        self.has_temporal_conv = temporal_conv
        if temporal_conv:
            self.temopral_conv = TemporalConvBlock(out_channels, spatial_aware=spatial_aware)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, batch: int) -> torch.Tensor:
        if self.resample is None:
            h = self.in_layers(x)
        else:
            h = self.in_layers[2](self.resample(self.in_layers[:2](x)))
            x = self.resample(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        if self.scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[1:](self.out_layers[0](h) * (1 + scale) + shift)
        else:
            h = self.out_layers(h + emb_out)
        h = self.skip_connection(x) + h
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


UPSAMPLE_MODES = ("nearest_conv", "phase_conv")

# Nearest x2 then a 3x3 conv (padding 1), per output row phase a (row 2i+a): the three taps read the
# upsampled rows 2i+a-1, 2i+a, 2i+a+1, which are the low-resolution rows i-1+a+r of r = 0, 1 below,
# each row receiving the sum of the taps marked 1. The same holds for columns.
_PHASE_TAPS = ((( 1, 0, 0), (0, 1, 1)),   # a = 0: row i-1 <- tap 0; row i <- taps 1 + 2
               (( 1, 1, 0), (0, 0, 1)))   # a = 1: row i <- taps 0 + 1; row i+1 <- tap 2


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """3x3 kernels [C_out, C_in, 3, 3] -> the 2x2 kernels of the four output phases (a, b) of
    nearest x2 then that conv, [4 C_out, C_in, 2, 2], phase-major (output channel (2a + b) C_out + o),
    summed in float32 and returned in the weight's dtype."""
    taps = torch.tensor(_PHASE_TAPS, dtype=torch.float32, device=weight.device)  # [phase, r, tap]
    kernels = torch.einsum("ary,bsx,oiyx->aboirs", taps, taps, weight.float())
    return kernels.reshape(4 * weight.shape[0], weight.shape[1], 2, 2).to(weight.dtype)


class Upsample(nn.Module):
    """Nearest 2x upsampling then a 3x3 conv, computed as `mode` says (set_upsample):

    "nearest_conv": as written, the 3x3 conv at the high resolution.
    "phase_conv": the same function with 4/9 of the multiply-adds: one 2x2 conv of the low-resolution
    input (padding 1, output [4 C, h+1, w+1]) giving the four output phases as channel groups
    (phase_kernels), each cropped to its offset and interleaved into [C, 2h, 2w]. Its kernels are
    derived from `conv` at each call (milliseconds against the call's seconds), so no second copy of the
    weights is held (16/9 of the conv's: 75 MB for a full-size window's two decoders in fp32, memory being
    issue 15's other goal). The state dict is `conv`'s; ONNX export takes "nearest_conv".
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.mode = "nearest_conv"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "phase_conv" and not torch.onnx.is_in_onnx_export():
            return self._phase_forward(x)
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))

    def _phase_forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        # [n, 4c, h+1, w+1]; phase (a, b) at rows a.., cols b..
        phases = F.conv2d(x, phase_kernels(self.conv.weight.detach()), self.conv.bias.detach().repeat(4), padding=1)
        layout = (torch.channels_last if phases.is_contiguous(memory_format=torch.channels_last)
                  and not phases.is_contiguous() else torch.contiguous_format)
        out = torch.empty(n, c, 2 * h, 2 * w, dtype=phases.dtype, device=phases.device, memory_format=layout)
        grid = out.view(n, c, h, 2, w, 2) if layout == torch.contiguous_format else \
            out.unflatten(3, (w, 2)).unflatten(2, (h, 2))  # [n, c, h, a, w, b], a view of out
        for a in (0, 1):
            for b in (0, 1):
                group = (2 * a + b) * c
                grid[:, :, :, a, :, b] = phases[:, group:group + c, a:a + h, b:b + w]
        return out


def set_upsample(module: nn.Module, mode: str) -> None:
    """Set how every Upsample inside `module` computes (Upsample's `mode`); results agree to float rounding."""
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"upsample mode {mode!r}: expected one of {', '.join(UPSAMPLE_MODES)}")
    for sub in module.modules():
        if isinstance(sub, Upsample):
            sub.mode = mode


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
                x = clips_to_frames(layer(frames_to_clips(x, batch), context))
            else:
                x = layer(x)
        return x
