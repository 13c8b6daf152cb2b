"""Fixture (c): the Resampler on CLIP-like tokens (Geo4D's 3-D input path)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from . import ATOL_UNET, CheckResult, compare, load_tiny
from ..conditioning import RESAMPLER_PREFIX
from ..config import resampler_params
from ..resampler import Resampler

FIXTURE = "resampler.safetensors"


def run(folder: Path, config: dict) -> list[CheckResult]:
    data = load_file(Path(folder) / FIXTURE)
    with torch.no_grad():
        resampler = load_tiny(Resampler.from_params(resampler_params(config)), folder, RESAMPLER_PREFIX)
        out = resampler(data["x"])
    return [compare("out", out, data["out"], ATOL_UNET)]
