"""Reproductions of the GeometryCrafter golden fixtures (../shared/fixtures/geometrycrafter layout),
one module per fixture file.

Each module defines `FIXTURE` (the file name) and `run(folder, config, device="cpu") -> list[CheckResult]`,
where `config` is `config.load_config(folder / "tiny_config.json")` ({part: official kwargs}) and the
tiny weights are the folder's `tiny_<part>.safetensors`. Same contract as Geo4D's checks (result
type and comparison from engine/models/fixtures.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ...fixtures import CheckResult, compare, load_tensors

# The fixture README's tolerance for stages replayed from stored inputs.
ATOL = 1e-4

__all__ = ["ATOL", "CheckResult", "compare", "load_tensors", "load_tiny"]


def load_tiny(module: nn.Module, folder: Path, weights: str, device: torch.device | str = "cpu") -> nn.Module:
    """`module` with the folder's tiny weights file `weights` (strict load), in eval mode on `device`."""
    module.load_state_dict(load_file(Path(folder) / weights), strict=True)
    return module.to(device).eval().requires_grad_(False)
