"""Fixture (c): the Resampler on CLIP-like tokens (Geo4D's 3-D input path)."""

from __future__ import annotations

from pathlib import Path

import torch

from . import ATOL_UNET, CheckResult, compare, load_tensors, load_tiny
from ..checkpoint_keys import RESAMPLER_PREFIX
from ..config import resampler_params
from ..resampler import Resampler

FIXTURE = "resampler.safetensors"


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    data = load_tensors(Path(folder) / FIXTURE, device)
    with torch.no_grad():
        resampler = load_tiny(Resampler.from_params(resampler_params(config)), folder, RESAMPLER_PREFIX, device)
        out = resampler(data["x"])
    return [compare("out", out, data["out"], ATOL_UNET)]
