"""GeometryCrafter's spatio-temporal UNet: diffusers' `UNetSpatioTemporalConditionModel` (SVD) with
the forward of the official `UNetSpatioTemporalConditionModelVid2vid` (geometrycrafter/unet.py),
written for inference. The `diff` UNet takes 12 channels (noisy latent, RGB latent, prior latent),
the one-step `determ` UNet 8 (prior latent, RGB latent); the code is the same.

Inputs (b clips of t frames, latent size h x w):
- sample                [b, t, in_channels, h, w]
- timestep              0-d or [1] tensor, or a python number (one value for the whole batch)
- encoder_hidden_states [b, t, D]: one CLIP image embedding per frame (frame i cross-attends only to
                        its own; the temporal layers attend to frame 0's, as diffusers does)
- added_time_ids        [b, 3] = (fps, motion bucket, noise augmentation strength)
Output: [b, t, out_channels, h, w]. h and w must be multiples of 2**(levels - 1).

Parameter names equal the official state-dict keys.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ...errors import InputError, ModelError
from ..geo4d.attention import BasicTransformerBlock, CrossAttention, FeedForward
from ..geo4d.blocks import Upsample
from .svd_blocks import (AlphaBlender, Downsample2D, SinusoidalEmbedding, SpatioTemporalResBlock,
                         TimestepEmbedding)

# Tokens per feed-forward call (FeedForward.max_tokens): its gated hidden layer is 8x as wide as its input, and
# over a whole window (110 frames x 9216 positions at 576x1024) it would be the UNet's largest tensor by far
# (5 GB in fp16).
FEED_FORWARD_TOKENS = 2 ** 16
CROSS_DOWN, PLAIN_DOWN = "CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"
CROSS_UP, PLAIN_UP = "CrossAttnUpBlockSpatioTemporal", "UpBlockSpatioTemporal"
# Config entries that create no parameter and change no result here.
_IGNORED_KWARGS = {"sample_size", "num_frames"}


class TemporalBasicTransformerBlock(nn.Module):
    """Attention along time at every position: a residual feed-forward in, self-attention,
    cross-attention to the context, feed-forward (all pre-norm, diffusers' block with
    time_mix_inner_dim = dim). x [(b t), s, c] -> same; context [(b s), L, D]."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int):
        super().__init__()
        self.norm_in = nn.LayerNorm(dim)
        self.ff_in = FeedForward(dim, max_tokens=FEED_FORWARD_TOKENS)
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = CrossAttention(dim, None, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, max_tokens=FEED_FORWARD_TOKENS)

    def forward(self, x: torch.Tensor, frames: int, context: torch.Tensor) -> torch.Tensor:
        n, s, c = x.shape
        b = n // frames
        x = x.reshape(b, frames, s, c).permute(0, 2, 1, 3).reshape(b * s, frames, c)
        x = self.ff_in(self.norm_in(x)) + x
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        x = self.ff(self.norm3(x)) + x
        return x.reshape(b, s, frames, c).permute(0, 2, 1, 3).reshape(n, s, c)


class TransformerSpatioTemporal(nn.Module):
    """Spatial transformer blocks per frame, each followed by a temporal block on the same features
    plus a learned frame-position embedding, blended by an AlphaBlender (diffusers
    `TransformerSpatioTemporalModel`). x [(b t), c, h, w]; context [(b t), L, D]."""

    def __init__(self, heads: int, dim_head: int, in_channels: int, num_layers: int, context_dim: int):
        super().__init__()
        inner_dim = heads * dim_head
        self.norm = nn.GroupNorm(32, in_channels, eps=1e-6)
        self.proj_in = nn.Linear(in_channels, inner_dim)
        # The SVD context has one token per frame: Geo4D's text-token slice keeps it whole.
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner_dim, heads, dim_head, context_dim) for _ in range(num_layers)])
        for block in self.transformer_blocks:
            block.ff.max_tokens = FEED_FORWARD_TOKENS  # Geo4D's block, with this UNet's token count
        self.temporal_transformer_blocks = nn.ModuleList(
            [TemporalBasicTransformerBlock(inner_dim, heads, dim_head, context_dim) for _ in range(num_layers)])
        self.time_pos_embed = TimestepEmbedding(in_channels, 4 * in_channels, out_dim=in_channels)
        self.time_proj = SinusoidalEmbedding(in_channels)
        self.time_mixer = AlphaBlender(0.5)
        self.proj_out = nn.Linear(inner_dim, in_channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor, frames: int) -> torch.Tensor:
        n, c, h, w = x.shape
        b = n // frames
        # The temporal blocks attend to the first frame's context, at every position.
        first = context.reshape(b, frames, -1, context.shape[-1])[:, 0]
        time_context = first[:, None].expand(b, h * w, *first.shape[1:]).reshape(b * h * w, *first.shape[1:])

        y = self.proj_in(self.norm(x).permute(0, 2, 3, 1).reshape(n, h * w, c))
        positions = torch.arange(frames, device=x.device).repeat(b)
        frame_embedding = self.time_pos_embed(self.time_proj(positions).to(y.dtype))[:, None, :]
        for block, temporal_block in zip(self.transformer_blocks, self.temporal_transformer_blocks):
            y = block(y, context)
            mixed = temporal_block(y + frame_embedding, frames, time_context)
            y = self.time_mixer(y, mixed)
        y = self.proj_out(y)
        return y.reshape(n, h, w, c).permute(0, 3, 1, 2).contiguous() + x


class DownBlock(nn.Module):
    """`CrossAttnDownBlockSpatioTemporal` (with `attentions`) or `DownBlockSpatioTemporal`:
    resnets (each followed by its transformer), then an optional strided conv. Returns the output
    and the skip tensors (one per resnet, plus the downsampled one)."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, num_layers: int,
                 add_downsample: bool, eps: float, heads: int | None = None, transformer_layers: int = 1,
                 context_dim: int | None = None):
        super().__init__()
        self.resnets = nn.ModuleList([
            SpatioTemporalResBlock(in_channels if i == 0 else out_channels, out_channels, temb_channels, eps)
            for i in range(num_layers)])
        if heads is not None:
            self.attentions = nn.ModuleList([
                TransformerSpatioTemporal(heads, out_channels // heads, out_channels, transformer_layers, context_dim)
                for _ in range(num_layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(out_channels)]) if add_downsample else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor,
                frames: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb, frames)
            if hasattr(self, "attentions"):
                x = self.attentions[i](x, context, frames)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UpBlock(nn.Module):
    """`CrossAttnUpBlockSpatioTemporal` or `UpBlockSpatioTemporal`: each resnet takes the previous
    output concatenated with a skip tensor (last in, first out), then an optional upsampling."""

    def __init__(self, in_channels: int, prev_channels: int, out_channels: int, temb_channels: int,
                 num_layers: int, add_upsample: bool, eps: float, heads: int | None = None,
                 transformer_layers: int = 1, context_dim: int | None = None):
        super().__init__()
        self.resnets = nn.ModuleList()
        for i in range(num_layers):
            skip = in_channels if i == num_layers - 1 else out_channels
            resnet_in = prev_channels if i == 0 else out_channels
            self.resnets.append(SpatioTemporalResBlock(resnet_in + skip, out_channels, temb_channels, eps))
        if heads is not None:
            self.attentions = nn.ModuleList([
                TransformerSpatioTemporal(heads, out_channels // heads, out_channels, transformer_layers, context_dim)
                for _ in range(num_layers)])
        self.upsamplers = nn.ModuleList([Upsample(out_channels)]) if add_upsample else None

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor], temb: torch.Tensor, context: torch.Tensor,
                frames: int) -> torch.Tensor:
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb, frames)
            if hasattr(self, "attentions"):
                x = self.attentions[i](x, context, frames)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class MidBlock(nn.Module):
    """`UNetMidBlockSpatioTemporal` with one layer: resnet, transformer, resnet."""

    def __init__(self, channels: int, temb_channels: int, heads: int, transformer_layers: int, context_dim: int):
        super().__init__()
        self.resnets = nn.ModuleList([SpatioTemporalResBlock(channels, channels, temb_channels, 1e-5)
                                      for _ in range(2)])
        self.attentions = nn.ModuleList([
            TransformerSpatioTemporal(heads, channels // heads, channels, transformer_layers, context_dim)])

    def forward(self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor, frames: int) -> torch.Tensor:
        x = self.resnets[0](x, temb, frames)
        x = self.attentions[0](x, context, frames)
        return self.resnets[1](x, temb, frames)


def _per_level(value, levels: int, name: str) -> list:
    values = [value] * levels if isinstance(value, int) else list(value)
    if len(values) != levels:
        raise ModelError(f"UNet config: {name} has {len(values)} entries for {levels} levels",
                         "give one entry per entry of block_out_channels (or a single number)")
    return values


class SpatioTemporalUNet(nn.Module):
    """Built from the official UNet config (see `from_config`). Levels, widths, heads and layer
    counts all come from it."""

    def __init__(self, in_channels: int = 8, out_channels: int = 4,
                 down_block_types=(CROSS_DOWN, CROSS_DOWN, CROSS_DOWN, PLAIN_DOWN),
                 up_block_types=(PLAIN_UP, CROSS_UP, CROSS_UP, CROSS_UP),
                 block_out_channels=(320, 640, 1280, 1280), addition_time_embed_dim: int = 256,
                 projection_class_embeddings_input_dim: int = 768, layers_per_block=2,
                 cross_attention_dim=1024, transformer_layers_per_block=1, num_attention_heads=(5, 10, 20, 20)):
        super().__init__()
        levels = len(block_out_channels)
        if len(down_block_types) != levels or len(up_block_types) != levels:
            raise ModelError("UNet config: down_block_types, up_block_types and block_out_channels differ in length",
                             "give one block type of each kind per entry of block_out_channels")
        unknown = sorted(set(down_block_types) - {CROSS_DOWN, PLAIN_DOWN} | set(up_block_types) - {CROSS_UP, PLAIN_UP})
        if unknown:
            raise ModelError(f"UNet config: block types {', '.join(unknown)} are not SVD spatio-temporal blocks",
                             f"use {CROSS_DOWN}/{PLAIN_DOWN} and {CROSS_UP}/{PLAIN_UP}")
        heads = _per_level(num_attention_heads, levels, "num_attention_heads")
        context_dims = _per_level(cross_attention_dim, levels, "cross_attention_dim")
        layers = _per_level(layers_per_block, levels, "layers_per_block")
        transformer_layers = _per_level(transformer_layers_per_block, levels, "transformer_layers_per_block")
        for ch, n in zip(block_out_channels, heads):
            if ch % n or ch % 32:
                raise ModelError(f"UNet config: {ch} channels do not split into {n} heads and 32 norm groups",
                                 "use widths divisible by 32 and by their level's head count")
        self.levels = levels
        self.addition_time_embed_dim = addition_time_embed_dim
        first = block_out_channels[0]
        time_embed_dim = 4 * first

        self.conv_in = nn.Conv2d(in_channels, first, 3, padding=1)
        self.time_proj = SinusoidalEmbedding(first)
        self.time_embedding = TimestepEmbedding(first, time_embed_dim)
        self.add_time_proj = SinusoidalEmbedding(addition_time_embed_dim)
        self.add_embedding = TimestepEmbedding(projection_class_embeddings_input_dim, time_embed_dim)

        self.down_blocks = nn.ModuleList()
        out = first
        for i, kind in enumerate(down_block_types):
            cross = kind == CROSS_DOWN
            prev, out = out, block_out_channels[i]
            # diffusers builds cross-attention down blocks with resnet eps 1e-6, plain ones with 1e-5.
            self.down_blocks.append(DownBlock(
                prev, out, time_embed_dim, layers[i], add_downsample=i < levels - 1, eps=1e-6 if cross else 1e-5,
                heads=heads[i] if cross else None, transformer_layers=transformer_layers[i],
                context_dim=context_dims[i]))

        self.mid_block = MidBlock(block_out_channels[-1], time_embed_dim, heads[-1], transformer_layers[-1],
                                  context_dims[-1])

        self.up_blocks = nn.ModuleList()
        widths = list(reversed(block_out_channels))
        out = widths[0]
        for i, kind in enumerate(up_block_types):
            cross = kind == CROSS_UP
            prev, out = out, widths[i]
            skip_in = widths[min(i + 1, levels - 1)]
            level = levels - 1 - i
            self.up_blocks.append(UpBlock(
                skip_in, prev, out, time_embed_dim, layers[level] + 1, add_upsample=i < levels - 1, eps=1e-6,
                heads=heads[level] if cross else None, transformer_layers=transformer_layers[level],
                context_dim=context_dims[level]))

        self.conv_norm_out = nn.GroupNorm(32, first, eps=1e-5)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(first, out_channels, 3, padding=1)

    @classmethod
    def from_config(cls, config: dict) -> "SpatioTemporalUNet":
        """From the official `unet_*/config.json` kwargs (diffusers `_` entries and the parameter-free
        `sample_size`/`num_frames` are ignored)."""
        kwargs = {k: v for k, v in config.items() if not k.startswith("_") and k not in _IGNORED_KWARGS}
        unknown = sorted(set(kwargs) - set(inspect.signature(cls).parameters))
        if unknown:
            raise ModelError(f"UNet config has entries this engine does not know: {', '.join(unknown)}",
                             "use a GeometryCrafter UNet config (unet_diff/config.json or unet_determ/config.json)")
        return cls(**kwargs)

    @property
    def size_multiple(self) -> int:
        """Latent sides must be multiples of this."""
        return 2 ** (self.levels - 1)

    def embedding(self, timestep, added_time_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Time embedding plus added-time-ids embedding: [b, 4*block_out_channels[0]]."""
        b = added_time_ids.shape[0]
        if not torch.is_tensor(timestep):
            # A python float becomes float64 as in the official forward; the embedding casts it to float32.
            timestep = torch.tensor([timestep], dtype=torch.float64 if isinstance(timestep, float) else torch.int64)
        timesteps = timestep.reshape(-1).to(added_time_ids.device).expand(b)
        emb = self.time_embedding(self.time_proj(timesteps).to(dtype))
        ids = self.add_time_proj(added_time_ids.flatten()).reshape(b, -1).to(dtype)
        return emb + self.add_embedding(ids)

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor,
                added_time_ids: torch.Tensor) -> torch.Tensor:
        b, t, _, h, w = sample.shape
        if h % self.size_multiple or w % self.size_multiple:
            raise InputError(f"the UNet got a {h}x{w} latent; its sides must be multiples of {self.size_multiple}",
                             f"resize the frames to multiples of {8 * self.size_multiple} pixels")
        dtype = self.conv_in.weight.dtype
        emb = self.embedding(timestep, added_time_ids, dtype).repeat_interleave(t, dim=0)
        context = encoder_hidden_states.flatten(0, 1).unsqueeze(1).to(dtype)

        x = self.conv_in(sample.flatten(0, 1).to(dtype))
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, emb, context, t)
            skips += block_skips
        x = self.mid_block(x, emb, context, t)
        for block in self.up_blocks:
            x = block(x, skips, emb, context, t)
        x = self.conv_out(self.conv_act(self.conv_norm_out(x)))
        return x.reshape(b, t, *x.shape[1:])
