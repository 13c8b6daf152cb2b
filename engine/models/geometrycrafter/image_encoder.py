"""The CLIP image conditioning of Stable Video Diffusion as GeometryCrafter uses it: transformers'
`CLIPVisionModelWithProjection` (the ViT-H/14 vision tower) and the pipeline's `encode_video`
(diffusers' antialiased resize to 224, CLIP normalisation), one embedding per frame.

Built from the transformers `CLIPVisionConfig` kwargs (`image_encoder/config.json`); parameter
names are transformers', so the hub weights load with strict=True.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # feature_extractor/preprocessor_config.json
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
ACTIVATIONS = {"gelu": F.gelu, "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x)}


class CLIPAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        q, k, v = (proj(x).reshape(n, length, self.heads, dim // self.heads).transpose(1, 2)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        return self.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, length, dim))


class CLIPMLP(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str):
        super().__init__()
        self.act = ACTIVATIONS[act]
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, act: str, eps: float):
        super().__init__()
        self.self_attn = CLIPAttention(dim, heads)
        self.layer_norm1 = nn.LayerNorm(dim, eps=eps)
        self.mlp = CLIPMLP(dim, hidden, act)
        self.layer_norm2 = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Module):
    def __init__(self, layers: list[CLIPEncoderLayer]):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class CLIPVisionEmbeddings(nn.Module):
    def __init__(self, dim: int, image_size: int, patch_size: int, channels: int):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.zeros(dim))
        self.patch_embedding = nn.Conv2d(channels, dim, patch_size, stride=patch_size, bias=False)
        self.position_embedding = nn.Embedding((image_size // patch_size) ** 2 + 1, dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(pixels.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(pixels.shape[0], 1, -1)
        return torch.cat([cls, patches], dim=1) + self.position_embedding.weight[None]


class CLIPVisionTransformer(nn.Module):
    def __init__(self, dim: int, image_size: int, patch_size: int, channels: int, layers: int, heads: int,
                 hidden: int, act: str, eps: float):
        super().__init__()
        self.embeddings = CLIPVisionEmbeddings(dim, image_size, patch_size, channels)
        self.pre_layrnorm = nn.LayerNorm(dim, eps=eps)  # transformers' spelling
        self.encoder = CLIPEncoder([CLIPEncoderLayer(dim, heads, hidden, act, eps) for _ in range(layers)])
        self.post_layernorm = nn.LayerNorm(dim, eps=eps)

    def pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, 3, S, S] normalised -> the post-LayerNorm class token [N, dim]."""
        x = self.pre_layrnorm(self.embeddings(pixels))
        for layer in self.encoder.layers:
            x = layer(x)
        return self.post_layernorm(x[:, 0])


class CLIPVisionModelWithProjection(nn.Module):
    """forward: normalised pixels [N, 3, image_size, image_size] -> image_embeds [N, projection_dim]."""

    def __init__(self, hidden_size: int, intermediate_size: int, num_attention_heads: int, num_hidden_layers: int,
                 projection_dim: int, image_size: int = 224, patch_size: int = 14, num_channels: int = 3,
                 hidden_act: str = "gelu", layer_norm_eps: float = 1e-5, **_training_only):
        super().__init__()
        if hidden_act not in ACTIVATIONS:
            raise ValueError(f"unsupported CLIP hidden_act {hidden_act!r} (supported: {', '.join(ACTIVATIONS)})")
        self.image_size = image_size
        self.vision_model = CLIPVisionTransformer(hidden_size, image_size, patch_size, num_channels,
                                                  num_hidden_layers, num_attention_heads, intermediate_size,
                                                  hidden_act, layer_norm_eps)
        self.visual_projection = nn.Linear(hidden_size, projection_dim, bias=False)

    @classmethod
    def from_config(cls, config: dict) -> "CLIPVisionModelWithProjection":
        """From a transformers CLIPVisionConfig dict (dropouts, initialisers and other training or
        bookkeeping keys are accepted and unused)."""
        return cls(**{k: v for k, v in config.items() if not k.startswith("_")})

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual_projection(self.vision_model.pooled(pixels))


def _gaussian_kernel(size: int, sigma: float, dtype: torch.dtype, device) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - size // 2
    sigma_t = torch.tensor(sigma, dtype=dtype, device=device)
    g = torch.exp(-x.pow(2.0) / (2 * sigma_t.pow(2.0)))
    return g / g.sum()


def _filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise 2-D filter [kh, kw] with reflect padding (odd kernels)."""
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    x = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    return F.conv2d(x, kernel[None, None].expand(c, 1, kh, kw), groups=c)


def antialias_blur_params(height: int, width: int,
                          size: tuple[int, int]) -> tuple[tuple[float, float], tuple[int, int]]:
    """diffusers' `_resize_with_antialiasing` blur: sigma = max((factor−1)/2, 0.001) and kernel
    int(max(4σ, 3)) made odd, per axis (h, w)."""
    sigmas = tuple(max((src / dst - 1.0) / 2.0, 0.001) for src, dst in ((height, size[0]), (width, size[1])))
    sizes = tuple(k + 1 - k % 2 for k in (int(max(4.0 * s, 3)) for s in sigmas))
    return sigmas, sizes


def resize_with_antialiasing(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """diffusers' `_resize_with_antialiasing`: a separable Gaussian blur (width first) sized by the
    scale factors, then bicubic interpolation with align_corners=True. x [N, C, H, W]."""
    (sigma_h, sigma_w), (k_h, k_w) = antialias_blur_params(x.shape[-2], x.shape[-1], size)
    x = _filter(x, _gaussian_kernel(k_w, sigma_w, x.dtype, x.device)[None, :])
    x = _filter(x, _gaussian_kernel(k_h, sigma_h, x.dtype, x.device)[:, None])
    return F.interpolate(x, size=size, mode="bicubic", align_corners=True)


def clip_pixels(video: torch.Tensor, image_size: int) -> torch.Tensor:
    """Frames [N, 3, H, W] in [-1, 1] -> CLIP input [N, 3, S, S]: antialiased resize, [0, 1], CLIP mean/std."""
    x = (resize_with_antialiasing(video.float(), (image_size, image_size)) + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device)[:, None, None]
    std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device)[:, None, None]
    return (x - mean) / std


@torch.no_grad()
def encode_video(image_encoder: CLIPVisionModelWithProjection, video: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Frames [T, 3, H, W] in [-1, 1] -> one CLIP embedding per frame [T, projection_dim] float32,
    `chunk_size` frames at a time (per frame, so the chunk size only bounds memory)."""
    dtype = next(image_encoder.parameters()).dtype
    out = []
    for i in range(0, video.shape[0], chunk_size):
        out.append(image_encoder(clip_pixels(video[i:i + chunk_size], image_encoder.image_size).to(dtype)).float())
    return torch.cat(out)
