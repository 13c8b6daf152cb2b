"""Fixture (c): the Resampler on CLIP-like tokens (Geo4D's 3-D input path)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from . import ATOL_UNET, CheckResult, compare
from ..config import resampler_params
from ..resampler import Resampler

FIXTURE = "resampler.safetensors"
PREFIX = "image_proj_model."


def load_tiny_resampler(folder: Path, config: dict) -> Resampler:
    """The fixture folder's tiny Resampler with its weights (strict load)."""
    weights = load_file(Path(folder) / "tiny_weights.safetensors")
    resampler = Resampler.from_params(resampler_params(config)).eval()
    resampler.load_state_dict({k[len(PREFIX):]: v for k, v in weights.items() if k.startswith(PREFIX)}, strict=True)
    return resampler


def run(folder: Path, config: dict) -> list[CheckResult]:
    data = load_file(Path(folder) / FIXTURE)
    with torch.no_grad():
        out = load_tiny_resampler(folder, config)(data["x"])
    return [compare("out", out, data["out"], ATOL_UNET)]
