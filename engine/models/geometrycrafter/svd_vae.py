"""Stable Video Diffusion's VAE (diffusers `AutoencoderKLTemporalDecoder`): a 2-D KL encoder and a
decoder whose residual blocks also mix neighbouring frames.

GeometryCrafter only runs the encoder (RGB frames and the disparity pseudo-image); its point-map
VAE reuses the encoder and the temporal decoder blocks defined here. Built from the diffusers
config (`vae/config.json` keys); parameter names are diffusers', so the hub weights load with
strict=True. Images `[N, 3, H, W]` in [-1, 1]; latents `[N, 4, H/8, W/8]`, unscaled.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ModelError
from ..geo4d.blocks import Upsample
from ..geo4d.vae import Downsample, Posterior
from .svd_blocks import ResnetBlock2D, SpatioTemporalResBlock, clips_to_frames, frames_to_clips

ENCODER_BLOCK = "DownEncoderBlock2D"


class Attention(nn.Module):
    """diffusers' `Attention` as the VAE mid blocks use it: GroupNorm, single-head self-attention over
    all pixels of a frame with biased linear projections, and the residual. x [N, c, h, w]."""

    def __init__(self, channels: int, heads: int = 1, eps: float = 1e-6, groups: int = 32):
        super().__init__()
        self.heads = heads
        self.group_norm = nn.GroupNorm(groups, channels, eps=eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        y = self.group_norm(x).reshape(n, c, h * w).transpose(1, 2)  # [n, hw, c]
        q, k, v = (proj(y).reshape(n, h * w, self.heads, c // self.heads).transpose(1, 2)
                   for proj in (self.to_q, self.to_k, self.to_v))
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, h * w, c)
        # The attention output first, as in diffusers: the sum keeps its (channels-last) layout, and the
        # convolutions after it round as the official's do.
        return self.to_out[0](y).transpose(1, 2).reshape(n, c, h, w) + x


class DownEncoderBlock2D(nn.Module):
    """`num_layers` resnets, then a Downsample if `add_downsample`; run by `Encoder.forward`."""

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, add_downsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, None)
                                      for i in range(num_layers)])
        self.downsamplers = nn.ModuleList([Downsample(out_channels)]) if add_downsample else None


class UNetMidBlock2D(nn.Module):
    """resnet, then (attention, resnet) once: the encoder's mid block (num_layers 1)."""

    def __init__(self, channels: int, add_attention: bool = True):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, None), ResnetBlock2D(channels, channels, None)])
        self.attentions = nn.ModuleList([Attention(channels)]) if add_attention else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        if self.attentions is not None:
            x = self.attentions[0](x)
        return self.resnets[1](x)


class Encoder(nn.Module):
    """Frames [N, in_channels, H, W] -> [N, (2 if double_z else 1) * out_channels, H/f, W/f], f = 2^(levels-1)."""

    def __init__(self, in_channels: int, out_channels: int, down_block_types: list[str],
                 block_out_channels: list[int], layers_per_block: int, double_z: bool,
                 mid_block_add_attention: bool = True):
        super().__init__()
        if any(t != ENCODER_BLOCK for t in down_block_types) or len(down_block_types) != len(block_out_channels):
            raise ValueError(f"the VAE encoder has one {ENCODER_BLOCK} per entry of block_out_channels, "
                             f"got {list(down_block_types)}")
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], 3, padding=1)
        widths = [block_out_channels[0], *block_out_channels]
        self.down_blocks = nn.ModuleList([
            DownEncoderBlock2D(widths[i], widths[i + 1], layers_per_block,
                               add_downsample=i < len(block_out_channels) - 1)
            for i in range(len(block_out_channels))
        ])
        self.mid_block = UNetMidBlock2D(block_out_channels[-1], mid_block_add_attention)
        self.conv_norm_out = nn.GroupNorm(32, block_out_channels[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(block_out_channels[-1], 2 * out_channels if double_z else out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        # The blocks' layers one by one, as in TemporalDecoderTrunk.features: no caller holds a block's input.
        for block in self.down_blocks:
            for resnet in block.resnets:
                x = resnet(x)
            if block.downsamplers is not None:
                x = block.downsamplers[0](x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


def decoder_resnet(cin: int, cout: int) -> SpatioTemporalResBlock:
    """The temporal decoders' residual block: no time embedding, the learned mix switched."""
    return SpatioTemporalResBlock(cin, cout, None, eps=1e-6, temporal_eps=1e-5, merge_factor=0.0,
                                  switch_spatial_to_temporal_mix=True)


class MidBlockTemporalDecoder(nn.Module):
    """`num_layers` spatio-temporal resnets with one attention after the first (none runs when
    num_layers is 1, but its weights exist)."""

    def __init__(self, channels: int, num_layers: int):
        super().__init__()
        self.resnets = nn.ModuleList([decoder_resnet(channels, channels) for _ in range(num_layers)])
        self.attentions = nn.ModuleList([Attention(channels)])

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        x = self.resnets[0](x, None, num_frames)
        for resnet, attention in zip(self.resnets[1:], self.attentions):
            x = resnet(attention(x), None, num_frames)
        return x


class UpBlockTemporalDecoder(nn.Module):
    """`num_layers` spatio-temporal resnets, then an Upsample if `add_upsample`; run by
    `TemporalDecoderTrunk.features`."""

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, add_upsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList([decoder_resnet(in_channels if i == 0 else out_channels, out_channels)
                                      for i in range(num_layers)])
        self.upsamplers = nn.ModuleList([Upsample(out_channels)]) if add_upsample else None


class TemporalDecoderTrunk(nn.Module):
    """conv_in, the mid block and the up blocks shared by SVD's and GeometryCrafter's temporal
    decoders: latent [(b t), cin, h, w] -> features [(b t), block_out_channels[0], h*f, w*f]."""

    def __init__(self, in_channels: int, block_out_channels: list[int], layers_per_block: int):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[-1], 3, padding=1)
        self.mid_block = MidBlockTemporalDecoder(block_out_channels[-1], layers_per_block)
        widths = list(reversed(block_out_channels))
        self.up_blocks = nn.ModuleList([
            UpBlockTemporalDecoder(widths[max(i - 1, 0)], widths[i], layers_per_block + 1,
                                   add_upsample=i < len(widths) - 1)
            for i in range(len(widths))
        ])

    def features(self, z: torch.Tensor, num_frames: int) -> torch.Tensor:
        x = self.mid_block(self.conv_in(z), num_frames)
        # The up blocks' layers run here one by one rather than in a block method, whose caller would hold the
        # block's input through all its resnets (in the last block 256 channels at full resolution: 2.25 GB of
        # the decoding's predicted peak at 576x1024, `bench memory --model geometrycrafter`).
        for block in self.up_blocks:
            for resnet in block.resnets:
                x = resnet(x, None, num_frames)
            if block.upsamplers is not None:
                x = block.upsamplers[0](x)
        return x


def time_conv(conv: nn.Conv3d, x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """A (3, 1, 1) Conv3d along the frames of [(b t), c, h, w]."""
    return clips_to_frames(conv(frames_to_clips(x, num_frames)))


class TemporalDecoder(TemporalDecoderTrunk):
    def __init__(self, in_channels: int, out_channels: int, block_out_channels: list[int], layers_per_block: int):
        super().__init__(in_channels, block_out_channels, layers_per_block)
        self.conv_norm_out = nn.GroupNorm(32, block_out_channels[0], eps=1e-6)
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, 3, padding=1)
        self.time_conv_out = nn.Conv3d(out_channels, out_channels, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, z: torch.Tensor, num_frames: int) -> torch.Tensor:
        x = self.features(z, num_frames)
        x = self.conv_out(F.silu(self.conv_norm_out(x)))
        return time_conv(self.time_conv_out, x, num_frames)


class AutoencoderKLTemporalDecoder(nn.Module):
    """Built from the diffusers config (in/out channels, down_block_types, block_out_channels,
    layers_per_block, latent_channels, scaling_factor; sample_size is accepted). With force_upcast
    (SVD's config) the official pipeline runs the VAE in float32 even in an fp16 pipeline: load it so."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, down_block_types: list[str] = (ENCODER_BLOCK,),
                 block_out_channels: list[int] = (64,), layers_per_block: int = 1, latent_channels: int = 4,
                 scaling_factor: float = 0.18215, sample_size: int = 32, force_upcast: bool = True):
        super().__init__()
        self.scaling_factor = float(scaling_factor)
        self.force_upcast = bool(force_upcast)
        self.encoder = Encoder(in_channels, latent_channels, list(down_block_types), list(block_out_channels),
                               layers_per_block, double_z=True)
        self.decoder = TemporalDecoder(latent_channels, out_channels, list(block_out_channels), layers_per_block)
        self.quant_conv = nn.Conv2d(2 * latent_channels, 2 * latent_channels, 1)

    @classmethod
    def from_config(cls, config: dict) -> "AutoencoderKLTemporalDecoder":
        """From a diffusers config.json dict (keys starting with '_' are ignored)."""
        kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
        unknown = sorted(set(kwargs) - set(inspect.signature(cls).parameters))
        if unknown:
            raise ModelError(f"SVD VAE config has entries this engine does not know: {', '.join(unknown)}",
                             "use Stable Video Diffusion's vae/config.json")
        return cls(**kwargs)

    def moments(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] in [-1, 1] -> [N, 2*latent, H/8, W/8] (mean, logvar): diffusers' latent_dist.parameters."""
        return self.quant_conv(self.encoder(images))

    def encode(self, images: torch.Tensor) -> Posterior:
        mean, logvar = torch.chunk(self.moments(images), 2, dim=1)
        return Posterior(mean, torch.clamp(logvar, -30.0, 20.0))

    def decode(self, z: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Unscaled latents [(b t), 4, h, w] of b clips of `num_frames` -> images [(b t), 3, 8h, 8w]."""
        return self.decoder(z, num_frames)


@torch.no_grad()
def encode_vae_video(vae: AutoencoderKLTemporalDecoder, video: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Frames [T, 3, H, W] in [-1, 1] -> posterior means [T, 4, H/8, W/8] (unscaled), `chunk_size`
    frames at a time (the encoder is per frame, so the chunk size only bounds memory)."""
    dtype = next(vae.parameters()).dtype
    return torch.cat([vae.encode(video[i:i + chunk_size].to(dtype)).mean.float()
                      for i in range(0, video.shape[0], chunk_size)])
