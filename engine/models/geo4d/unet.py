"""The DynamiCrafter 3D UNet as Geo4D configures it (official `UNetModel`,
`lvdm/modules/networks/openaimodel3d.py`), written for inference.

Inputs (b clips of t frames, latent size h x w):
- x         [b, in_channels, t, h, w]   noisy latent concatenated with the condition latent (20 = 16 + 4)
- timesteps [b] or [b, t] int64          diffusion step(s) in 0..999
- context   [b, 77 + 16*t, context_dim]  77 text tokens, then 16 image tokens per frame
            (or [b, L, context_dim] shared by all frames, any other L); or its keys and values
            (`project_context`, of batch b or 1), which a constant context needs computed only once
- fs        [b] int64                    frame stride / fps conditioning (default `default_fs`)
Output: [b, out_channels, t, h, w] (v-prediction for Geo4D). h and w must be divisible by
2**(len(channel_mult) - 1).

Inside, everything runs per frame as [(b t), c, h, w]; the temporal layers see [b, c, t, h, w].
Parameter names equal the official state-dict keys after stripping `model.diffusion_model.`.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
from torch import nn

from ...errors import InputError, ModelError
from .attention import TEXT_TOKENS, ContextKeysValues, CrossAttention, SpatialTransformer, TemporalTransformer
from .blocks import (Downsample, GroupNorm32, ResBlock, TimestepEmbedSequential, Upsample, clips_to_frames,
                     frames_to_clips)

# Image tokens per frame in the context. Hard-coded in the official forward as well: the per-frame
# split happens exactly when the context length is 77 + 16*t.
IMAGE_TOKENS_PER_FRAME = 16

# Official UNetModel flags whose other values the official inference cannot run either: other dims fail at
# the first conv (the frames go through 2D layers), task_condition asserts a task id the sampler never passes.
_REQUIRED_FLAGS = {"dims": 2, "task_condition": False}
# Flags without effect on our inference result (training memory; precision is the caller's dtype).
_IGNORED_FLAGS = {"use_checkpoint", "use_fp16"}


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [N] -> [N, dim] float32: cos of the frequencies first, then sin."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


def _mlp(dim_in: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim_out), nn.SiLU(), nn.Linear(dim_out, dim_out))


def _repeat_per_frame(x: torch.Tensor, frames: int) -> torch.Tensor:
    """[b, ...] -> [(b t), ...], each clip's row repeated for its frames."""
    return x[:, None].expand(x.shape[0], frames, *x.shape[1:]).reshape(x.shape[0] * frames, *x.shape[1:])


@dataclass(frozen=True)
class ProjectedContext:
    """A context's keys and values for every cross-attention layer of a UNet (UNet3D.project_context), for
    calls on clips of `frames` frames. Each tensor is [b, 1 or frames, L, heads*d]: 1 where all frames
    share the tokens (the text; a context of another length), `frames` for per-frame image tokens."""

    frames: int
    layers: dict[CrossAttention, ContextKeysValues]

    def per_frame(self, batch: int, frames: int) -> dict[CrossAttention, ContextKeysValues]:
        """Each layer's keys and values for `batch` clips of `frames` frames: [(batch frames), L, heads*d]
        (views where the batch is 1)."""
        context_batch = next(iter(self.layers.values())).text_k.shape[0]
        if frames != self.frames or context_batch not in (1, batch):
            raise InputError(f"the UNet got {batch} clips of {frames} frames with a context projected for "
                             f"{context_batch} clip(s) of {self.frames} frames",
                             "project the context for these clips (UNet3D.project_context)")

        def layout(kv: torch.Tensor) -> torch.Tensor:
            return kv.expand(batch, frames, -1, -1).reshape(batch * frames, *kv.shape[2:])
        return {layer: keys_values.map(layout) for layer, keys_values in self.layers.items()}


class UNet3D(nn.Module):
    """The official UNetModel's constructor arguments and defaults (see `from_params`). `temporal_length`
    sizes the relative-position tables and the causal mask of the temporal attention (Geo4D uses neither)."""

    def __init__(self, in_channels: int, model_channels: int, out_channels: int, num_res_blocks: int,
                 attention_resolutions, channel_mult, context_dim: int, num_head_channels: int = -1,
                 num_heads: int = -1, dropout: float = 0.0, transformer_depth: int = 1, use_linear: bool = False,
                 temporal_conv: bool = False, temporal_attention: bool = True, temporal_length: int | None = None,
                 addition_attention: bool = False, image_cross_attention: bool = False,
                 default_fs: int = 4, fs_condition: bool = False, use_scale_shift_norm: bool = False,
                 image_cross_attention_scale_learnable: bool = False, use_causal_attention: bool = False,
                 resblock_updown: bool = False, conv_resample: bool = True, use_relative_position: bool = True,
                 tempspatial_aware: bool = False, temporal_selfatt_only: bool = True):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.context_dim = context_dim
        self.model_channels = model_channels
        self.default_fs = default_fs
        self.fs_condition = fs_condition
        self.addition_attention = addition_attention
        self.size_multiple = 2 ** (len(channel_mult) - 1)  # latent sides must divide by this
        time_embed_dim = model_channels * 4

        def res_block(ch_in: int, ch_out: int) -> ResBlock:
            return ResBlock(ch_in, time_embed_dim, dropout, ch_out, temporal_conv=temporal_conv,
                            scale_shift_norm=use_scale_shift_norm, spatial_aware=tempspatial_aware)

        def resample_layer(ch: int, down: bool) -> nn.Module:
            # resblock_updown: a ResBlock resizing both its paths (no temporal conv, as the official's);
            # else with conv_resample a strided conv, or nearest x2 then a conv; else the resize alone.
            resize = nn.AvgPool2d(2) if down else nn.Upsample(scale_factor=2, mode="nearest")
            if resblock_updown:
                return ResBlock(ch, time_embed_dim, dropout, scale_shift_norm=use_scale_shift_norm, resample=resize)
            if not conv_resample:
                return resize
            return Downsample(ch) if down else Upsample(ch)

        if num_head_channels == -1 and num_heads == -1:
            raise ModelError("UNet config sets neither num_head_channels nor num_heads",
                             "set num_head_channels (Geo4D: 64) or num_heads in unet_config.params")
        if addition_attention and num_head_channels == -1:
            # The official init_attn takes num_head_channels as its head width: -1 cannot be built.
            raise ModelError("UNet config sets addition_attention without num_head_channels",
                             "set num_head_channels in unet_config.params (the official code cannot build this "
                             "configuration either)")
        if use_relative_position and (temporal_attention or addition_attention) and temporal_length is None:
            # The official relative-position tables span temporal_length; unset, it asserts. (use_relative_position
            # defaults to True there, as here: a config that omits it gets the tables.)
            raise ModelError("UNet config uses relative positions in temporal attention (use_relative_position, "
                             "true unless set) without temporal_length",
                             "set temporal_length in unet_config.params, or use_relative_position: false (the "
                             "official code cannot build this configuration either)")
        relative_length = temporal_length if use_relative_position else None
        if use_causal_attention and temporal_attention and temporal_length is None:
            # The official causal mask is temporal_length square: it cannot be built without it.
            raise ModelError("UNet config sets use_causal_attention without temporal_length",
                             "set temporal_length in unet_config.params (the official code cannot build this "
                             "configuration either)")

        def attention_layers(ch: int) -> list[nn.Module]:
            # As the official code: num_head_channels, when set, fixes the head width (num_heads is then
            # ignored); otherwise num_heads fixes the head count and the width is ch // num_heads.
            if num_head_channels == -1:
                heads, dim_head = num_heads, ch // num_heads
            else:
                heads, dim_head = ch // num_head_channels, num_head_channels
            layers: list[nn.Module] = [SpatialTransformer(
                ch, heads, dim_head, transformer_depth, context_dim, use_linear, image_cross_attention,
                image_cross_attention_scale_learnable)]
            if temporal_attention:
                layers.append(TemporalTransformer(ch, heads, dim_head, transformer_depth, use_linear,
                                                  temporal_length if use_causal_attention else None,
                                                  relative_length))
            return layers

        self.time_embed = _mlp(model_channels, time_embed_dim)
        if fs_condition:
            self.fps_embedding = _mlp(model_channels, time_embed_dim)

        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(in_channels, model_channels, 3, padding=1))])
        if addition_attention:
            # The official code builds this one with 8 heads and without use_linear (Conv1d projections).
            self.init_attn = TimestepEmbedSequential(
                TemporalTransformer(model_channels, 8, num_head_channels, transformer_depth, use_linear=False,
                                    relative_length=relative_length,
                                    # The official UNet's own temporal layers ignore temporal_selfatt_only.
                                    context_dim=None if temporal_selfatt_only else context_dim))

        skip_channels = [model_channels]
        ch = model_channels
        ds = 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res_block(ch, mult * model_channels)]
                ch = mult * model_channels
                if ds in attention_resolutions:
                    layers += attention_layers(ch)
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_channels.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(resample_layer(ch, down=True)))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = TimestepEmbedSequential(res_block(ch, ch), *attention_layers(ch), res_block(ch, ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res_block(ch + skip_channels.pop(), mult * model_channels)]
                ch = mult * model_channels
                if ds in attention_resolutions:
                    layers += attention_layers(ch)
                if level and i == num_res_blocks:
                    layers.append(resample_layer(ch, down=False))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(model_channels, out_channels, 3, padding=1))

    @classmethod
    def from_params(cls, params: dict) -> "UNet3D":
        """Builds the UNet from the official `unet_config.params` dict (see config.unet_params)."""
        params = dict(params)
        for name, required in _REQUIRED_FLAGS.items():
            if name in params and params.pop(name) != required:
                raise ModelError(f"UNet config sets {name}, which Geo4D does not use and the official inference "
                                 "cannot run",
                                 f"use a Geo4D configuration ({name}: {required})")
        for name in _IGNORED_FLAGS:
            params.pop(name, None)
        unknown = sorted(set(params) - set(inspect.signature(cls).parameters))
        if unknown:
            raise ModelError(f"UNet config has parameters this engine does not know: {', '.join(unknown)}",
                             "use a Geo4D configuration (configs/inference_geo4d.yaml unet_config.params)")
        return cls(**params)

    def time_embedding(self, timesteps: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """timesteps [N] int64 -> [N, 4*model_channels]."""
        return self.time_embed(timestep_embedding(timesteps, self.model_channels).to(dtype))

    def fps_embed(self, fs: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """fs [b] int64 -> [b, 4*model_channels]."""
        return self.fps_embedding(timestep_embedding(fs, self.model_channels).to(dtype))

    @staticmethod
    def frame_context(context: torch.Tensor, frames: int) -> torch.Tensor:
        """[b, 77 + 16*t, C] -> [(b t), 77 + 16, C]: each frame gets the text tokens and its own image
        tokens. Any other context length is shared by all frames: [b, L, C] -> [(b t), L, C]. (The official
        layout, checked against its fixture; the UNet projects the tokens without building it: project_context.)"""
        b, length, dim = context.shape
        if length != TEXT_TOKENS + IMAGE_TOKENS_PER_FRAME * frames:
            return _repeat_per_frame(context, frames)
        text = _repeat_per_frame(context[:, :TEXT_TOKENS], frames)
        image = context[:, TEXT_TOKENS:].reshape(b * frames, IMAGE_TOKENS_PER_FRAME, dim)
        return torch.cat([text, image], dim=1)

    def project_context(self, context: torch.Tensor, frames: int) -> ProjectedContext:
        """Every cross-attention layer's keys and values of `context`, for calls on clips of `frames` frames:
        [b, 77 + 16*frames, C] gives each frame the text tokens and its own 16 image tokens (as frame_context
        lays them out), any other length is shared by all frames. The text tokens are projected once per
        clip, not per frame; a constant context (the sampler's) needs this once for all its calls."""
        b, length, dim = context.shape
        text = context[:, None, :TEXT_TOKENS]
        if length == TEXT_TOKENS + IMAGE_TOKENS_PER_FRAME * frames:
            image = context[:, TEXT_TOKENS:].reshape(b, frames, IMAGE_TOKENS_PER_FRAME, dim)
        else:
            image = context[:, None, TEXT_TOKENS:]
        layers = [block.attn2 for module in self.modules() if isinstance(module, SpatialTransformer)
                  or isinstance(module, TemporalTransformer) and module.attends_to_context
                  for block in module.transformer_blocks]
        return ProjectedContext(frames, {layer: layer.project_context(text, image) for layer in layers})

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor | ProjectedContext,
                fs: torch.Tensor | None = None) -> torch.Tensor:
        b, _, t, h, w = x.shape
        if h % self.size_multiple or w % self.size_multiple:
            raise InputError(f"the UNet got a {h}x{w} latent; its sides must be multiples of {self.size_multiple}",
                             f"resize the frames to multiples of {8 * self.size_multiple} pixels")
        dtype = x.dtype
        if timesteps.dim() == 2:  # one step per frame
            emb = self.time_embedding(timesteps.reshape(b * t), dtype)
        else:
            emb = _repeat_per_frame(self.time_embedding(timesteps, dtype), t)
        if self.fs_condition:
            if fs is None:
                fs = torch.full((b,), self.default_fs, dtype=torch.long, device=x.device)
            emb = emb + _repeat_per_frame(self.fps_embed(fs, dtype), t)
        if isinstance(context, torch.Tensor):
            context = self.project_context(context, t)
        layers = context.per_frame(b, t)

        hidden = clips_to_frames(x)
        skips = []
        for index, block in enumerate(self.input_blocks):
            hidden = block(hidden, emb, layers, b)
            if index == 0 and self.addition_attention:
                hidden = self.init_attn(hidden, emb, layers, b)
            skips.append(hidden)
        hidden = self.middle_block(hidden, emb, layers, b)
        for block in self.output_blocks:
            hidden = block(torch.cat([hidden, skips.pop()], dim=1), emb, layers, b)
        out = self.out(hidden)
        return frames_to_clips(out, b)
