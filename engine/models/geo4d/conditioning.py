"""Geo4D's cross-attention context, a constant of the checkpoint, computed once at conversion.

Geo4D always prompts with the same sentence and feeds its image branch an all-zero frame, so
[text tokens ; Resampler(CLIP image tokens)] never changes. This module rebuilds the two open_clip
towers (architecture from open_clip, created without download; weights from the checkpoint's
`cond_stage_model.` and `embedder.` tensors) and evaluates that context. Nothing here runs at
inference time, so open_clip is only a conversion dependency.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from ...errors import ModelError
from .config import model_params, resampler_params
from .checkpoint_keys import IMAGE_PREFIX, RESAMPLER_PREFIX, TEXT_PREFIX, load_part, strip_prefix
from .resampler import Resampler

PROMPT = "Output a video that assigns each 3D location in the world a consistent color."
DEFAULT_ARCH = "ViT-H-14"  # the wrappers' default; the official yaml does not name one

# The open_clip sub-modules each tower uses (the checkpoint's wrappers deleted the rest).
TEXT_PARTS = ("token_embedding", "positional_embedding", "transformer", "ln_final")
IMAGE_PARTS = ("visual",)

CLIP_SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def register_open_clip_config(name: str, config: dict) -> None:
    """Makes a custom open_clip architecture (a fixture's tiny CLIP) known under `name`."""
    import open_clip

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / f"{name}.json").write_text(json.dumps(config))
        open_clip.add_model_config(folder)


def clip_arch(config: dict) -> str:
    """The open_clip architecture name, registering a custom one that the config carries."""
    custom = config.get("open_clip_model_config")
    if custom is not None:
        register_open_clip_config(custom["name"], custom["config"])
    return model_params(config)["cond_stage_config"]["params"].get("arch") or DEFAULT_ARCH


def build_clip(arch: str, state_dict: dict[str, torch.Tensor], prefix: str, needed: tuple[str, ...]):
    """An open_clip CLIP whose `needed` sub-modules carry the checkpoint's `prefix`ed tensors.
    Built on the meta device, so no random init and no memory for the unused tower."""
    import open_clip

    if arch not in open_clip.list_models():
        raise ModelError(f"open_clip does not know the CLIP architecture {arch!r}",
                         "use the official config, or a fixture tiny_config.json that carries open_clip_model_config")
    model = open_clip.create_model(arch, pretrained=None, device="meta")
    weights = strip_prefix(state_dict, prefix)
    expected = [k for k in model.state_dict() if k.split(".")[0] in needed]
    missing = [prefix + k for k in expected if k not in weights]
    if missing:
        raise ModelError(f"the checkpoint lacks {len(missing)} CLIP tensors, e.g. {missing[0]}",
                         "use the complete Geo4D model.ckpt")
    model.load_state_dict({k: weights[k].float() for k in expected}, strict=False, assign=True)
    if "transformer" in needed:
        model.attn_mask = _causal_mask(model.context_length)
    return model.eval()


def _causal_mask(n: int) -> torch.Tensor:
    return torch.full((n, n), float("-inf")).triu_(1)


@torch.no_grad()
def text_context(clip, prompt: str = PROMPT) -> torch.Tensor:
    """[1, 77, width]: every text block but the last ("penultimate"), then ln_final; no projection."""
    import open_clip

    tokens = open_clip.tokenize([prompt])
    x = clip.token_embedding(tokens) + clip.positional_embedding
    x = x.permute(1, 0, 2)  # the blocks take [tokens, batch, width]
    for block in clip.transformer.resblocks[:-1]:
        x = block(x, attn_mask=clip.attn_mask)
    return clip.ln_final(x.permute(1, 0, 2))


def preprocess_frame(frame: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] in [-1, 1] -> [B, 3, 224, 224] CLIP input: kornia-style antialiased bicubic
    resize (Gaussian pre-blur with sigma (factor - 1) / 2 when shrinking, align_corners=True),
    then [0, 1], then CLIP's mean/std."""
    h, w = frame.shape[-2:]
    sigmas = [max((n / CLIP_SIZE - 1.0) / 2.0, 0.001) for n in (h, w)]
    x = _gaussian_blur(frame, sigmas)
    x = F.interpolate(x, size=(CLIP_SIZE, CLIP_SIZE), mode="bicubic", align_corners=True)
    x = (x + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def _gaussian_blur(x: torch.Tensor, sigmas: list[float]) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding; kernel size max(4 sigma, 3) made odd."""
    c = x.shape[1]
    for axis, sigma in zip((2, 3), sigmas):
        size = int(max(4.0 * sigma, 3))
        size += 1 - size % 2
        offsets = torch.arange(size, dtype=x.dtype) - size // 2
        kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
        kernel = (kernel / kernel.sum()).repeat(c, 1, 1, 1)  # [C, 1, size, 1] or [C, 1, 1, size]
        kernel = kernel.view(c, 1, size, 1) if axis == 2 else kernel.view(c, 1, 1, size)
        pad = (0, 0, size // 2, size // 2) if axis == 2 else (size // 2, size // 2, 0, 0)
        x = F.conv2d(F.pad(x, pad, mode="reflect"), kernel, groups=c)
    return x


@torch.no_grad()
def image_tokens(clip, pixels: torch.Tensor) -> torch.Tensor:
    """Preprocessed [B, 3, 224, 224] -> [B, 1 + grid^2, width]: all tokens after the vision
    transformer (no ln_post, no projection)."""
    visual = clip.visual
    x = visual.conv1(pixels).flatten(2).transpose(1, 2)
    cls = visual.class_embedding.expand(x.shape[0], 1, -1)
    x = visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding)
    return visual.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)


def load_resampler(config: dict, state_dict: dict[str, torch.Tensor]) -> Resampler:
    weights = {k: v.float() for k, v in state_dict.items() if k.startswith(RESAMPLER_PREFIX)}
    return load_part(Resampler.from_params(resampler_params(config)), weights, RESAMPLER_PREFIX)


@torch.no_grad()
def constant_context(state_dict: dict[str, torch.Tensor], config: dict) -> torch.Tensor:
    """The constant UNet context [1, 77 + video_length * num_queries, context_dim] (float32):
    the prompt's text tokens, then the Resampler's tokens for an all-zero frame."""
    arch = clip_arch(config)
    text = text_context(build_clip(arch, state_dict, TEXT_PREFIX, TEXT_PARTS))
    # A zero frame of any size resizes to zeros, so its size does not matter.
    zero = torch.zeros(1, 3, CLIP_SIZE, CLIP_SIZE)
    tokens = image_tokens(build_clip(arch, state_dict, IMAGE_PREFIX, IMAGE_PARTS), preprocess_frame(zero))
    image = load_resampler(config, state_dict)(tokens)
    return torch.cat([text, image], dim=1)
