"""The image-token Resampler of DynamiCrafter (official `Resampler`, `lvdm/modules/encoders/resampler.py`):
a Perceiver that turns CLIP vision tokens into the UNet's image context.

Geo4D uses the 3-D input path: one image's tokens x [b, L, embedding_dim] are attended jointly by all
num_queries * video_length learned queries, giving [b, video_length * num_queries, output_dim]; the UNet
later gives each frame its own num_queries tokens. Parameter names equal the official state-dict keys
after stripping `image_proj_model.`.
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import InputError
from .attention import multi_head_attention


class PerceiverAttention(nn.Module):
    """The queries (latents) attend to [image tokens ; latents]."""

    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__()
        inner_dim = dim_head * heads
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(dim, inner_dim * 2, bias=False)
        self.to_out = nn.Linear(inner_dim, dim, bias=False)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x)
        latents = self.norm2(latents)
        k, v = self.to_kv(torch.cat([x, latents], dim=1)).chunk(2, dim=-1)
        return self.to_out(multi_head_attention(self.to_q(latents), k, v, self.heads))


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    """LayerNorm, then a bias-free GELU MLP (indices match the official keys)."""
    inner_dim = dim * mult
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, inner_dim, bias=False), nn.GELU(),
                         nn.Linear(inner_dim, dim, bias=False))


class Resampler(nn.Module):
    def __init__(self, dim: int = 1024, depth: int = 8, dim_head: int = 64, heads: int = 16, num_queries: int = 8,
                 embedding_dim: int = 768, output_dim: int = 1024, ff_mult: int = 4, video_length: int | None = None):
        super().__init__()
        total_queries = num_queries * (video_length or 1)
        self.latents = nn.Parameter(torch.randn(1, total_queries, dim) / dim**0.5)
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList([
            nn.ModuleList([PerceiverAttention(dim, dim_head, heads), feed_forward(dim, ff_mult)])
            for _ in range(depth)
        ])

    @classmethod
    def from_params(cls, params: dict) -> "Resampler":
        """Builds the Resampler from the official `image_proj_stage_config.params` dict."""
        return cls(**params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [b, L, embedding_dim] (CLIP vision tokens of one image) -> [b, total_queries, output_dim]."""
        if x.dim() != 3:
            raise InputError(f"Resampler input has shape {tuple(x.shape)}; expected [batch, tokens, channels]",
                             "pass one image's CLIP tokens per batch element (Geo4D's 3-D path)")
        x = self.proj_in(x)
        latents = self.latents.expand(x.shape[0], -1, -1)
        for attention, ff in self.layers:
            latents = attention(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))
