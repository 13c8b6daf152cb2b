"""Fixture (g): prompt tokens, penultimate-layer text context, CLIP preprocessing and vision
tokens (blank frame and a real image), the Resampler, and the constant cross-attention context."""

from __future__ import annotations

from pathlib import Path

import open_clip
from safetensors.torch import load_file

from .. import conditioning as cond
from . import ATOL_UNET, CheckResult, compare

FIXTURE = "conditioning.safetensors"
# CLIP and the Resampler's context run once, at conversion, on the CPU (the preprocessing's
# constants are CPU tensors): the check runs there whatever the device asked for.
DEVICE = "cpu"


def run(folder: Path, config: dict, device: str = "cpu") -> list[CheckResult]:
    folder = Path(folder)
    fx = load_file(folder / FIXTURE)
    weights = load_file(folder / "tiny_weights.safetensors")
    arch = cond.clip_arch(config)
    text = cond.build_clip(arch, weights, cond.TEXT_PREFIX, cond.TEXT_PARTS)
    vision = cond.build_clip(arch, weights, cond.IMAGE_PREFIX, cond.IMAGE_PARTS)
    results = [
        compare("cond.prompt_tokens", open_clip.tokenize([cond.PROMPT]), fx["prompt_token_ids"], 0.0),
        compare("cond.empty_prompt_tokens", open_clip.tokenize([""]), fx["empty_prompt_token_ids"], 0.0),
        compare("cond.text_context", cond.text_context(text), fx["text_context"]),
        compare("cond.empty_text_context", cond.text_context(text, ""), fx["empty_text_context"]),
    ]
    for name in ("zero_frame", "test_image"):
        pixels = cond.preprocess_frame(fx[name])
        results.append(compare(f"cond.{name}_preprocessed", pixels, fx[f"{name}_preprocessed"]))
        results.append(compare(f"cond.{name}_clip_tokens", cond.image_tokens(vision, pixels),
                               fx[f"{name}_clip_tokens"]))
    resampler = cond.load_resampler(config, weights)
    results.append(compare("cond.image_context", resampler(fx["zero_frame_clip_tokens"]), fx["image_context"],
                           ATOL_UNET))
    results.append(compare("cond.c_crossattn", cond.constant_context(weights, config), fx["c_crossattn"]))
    return results
