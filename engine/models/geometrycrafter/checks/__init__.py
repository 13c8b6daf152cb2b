"""Reproductions of the GeometryCrafter golden fixtures (../shared/fixtures/geometrycrafter layout),
one module per fixture file.

Each module defines `FIXTURE` (the file name) and `run(folder, config, device="cpu") -> list[CheckResult]`,
where `config` is `config.load_config(folder / "tiny_config.json")` ({part: official kwargs}) and the
tiny weights are the folder's `tiny_<part>.safetensors`. Same contract as Geo4D's checks, whose
result type and comparison are reused.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ...geo4d.checks import ATOL, CheckResult, compare, load_tensors

__all__ = ["ATOL", "CheckResult", "compare", "load_tensors", "load_tiny"]


def load_tiny(module: nn.Module, folder: Path, weights: str, device: torch.device | str = "cpu") -> nn.Module:
    """`module` with the folder's tiny weights file `weights` (strict load), in eval mode on `device`."""
    module.load_state_dict(load_file(Path(folder) / weights), strict=True)
    return module.to(device).eval().requires_grad_(False)
