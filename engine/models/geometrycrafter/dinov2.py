"""The DINOv2 ViT backbone of MoGe (the copy of facebookresearch/dinov2 vendored in microsoft/MoGe),
for inference: patch embedding, position embeddings interpolated to the image's patch grid,
LayerScale blocks, and the normalised tokens of the last blocks.

Parameter names follow DINOv2 (`backbone.` in MoGe's state dict), so the checkpoint loads with
strict=True. Only the configuration MoGe uses is built: patch 14, 518-pixel position table, MLP
feed-forward, LayerScale, no register tokens, unchunked blocks, offset-0.1 bicubic interpolation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PATCH = 14
IMG_SIZE = 518  # the position table covers 37 x 37 patches
INTERPOLATE_OFFSET = 0.1


@dataclass(frozen=True)
class ViTSize:
    embed_dim: int
    depth: int
    num_heads: int


# The DINOv2 hub entry points MoGe can name (`encoder` in its model_config) and their sizes.
ENTRY_POINTS = {
    "dinov2_vits14": ViTSize(384, 12, 6),
    "dinov2_vitb14": ViTSize(768, 12, 12),
    "dinov2_vitl14": ViTSize(1024, 24, 16),
}


class PatchEmbed(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, PATCH, stride=PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).permute(0, 2, 1, 3).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoVisionTransformer(nn.Module):
    def __init__(self, size: ViTSize):
        super().__init__()
        dim = size.embed_dim
        grid = IMG_SIZE // PATCH
        self.patch_embed = PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        self.blocks = nn.ModuleList([Block(dim, size.num_heads) for _ in range(size.depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # training only; in the checkpoint

    def position_embedding(self, rows: int, cols: int) -> torch.Tensor:
        """[1, 1 + rows*cols, dim]: the table resized bicubically by ((rows+0.1)/37, (cols+0.1)/37)."""
        table = self.pos_embed.shape[1] - 1
        if rows * cols == table and rows == cols:
            return self.pos_embed
        pos = self.pos_embed.float()
        side = int(math.sqrt(table))
        dim = pos.shape[-1]
        patch_pos = F.interpolate(pos[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2), mode="bicubic",
                                  scale_factor=((rows + INTERPOLATE_OFFSET) / side, (cols + INTERPOLATE_OFFSET) / side),
                                  antialias=False)
        if tuple(patch_pos.shape[-2:]) != (rows, cols):
            raise ValueError(f"DINOv2 position table resized to {tuple(patch_pos.shape[-2:])}, not {(rows, cols)}")
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)
        return torch.cat([pos[:, :1], patch_pos], dim=1).to(self.pos_embed.dtype)

    def intermediate_layers(self, image: torch.Tensor, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """image [B, 3, 14r, 14c] (normalised) -> for each of the last `n` blocks, (LayerNorm-ed patch
        tokens [B, r*c, dim], class token [B, dim])."""
        rows, cols = image.shape[-2] // PATCH, image.shape[-1] // PATCH
        x = self.patch_embed(image)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.position_embedding(rows, cols)
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i >= len(self.blocks) - n:
                outputs.append(self.norm(x))
        return [(out[:, 1:], out[:, 0]) for out in outputs]
