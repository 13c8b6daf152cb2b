"""Reproductions of the golden fixtures (../shared/fixtures/geo4d layout), one module per fixture file.

Each module in this package defines `FIXTURE` (the file name) and
`run(folder: Path, config: dict, device="cpu") -> list[CheckResult]`, where `config` is
`load_config(folder / "tiny_config.json")` and `device` is where the networks and the fixture's
tensors go. A module whose code does not run on that device says where it runs in `DEVICE`: "cpu"
(conversion-time code) or None (no tensors computed). `python -m engine check-fixtures FOLDER`
runs them all and prints one line each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from ..checkpoint_keys import load_part

# The fixture README's suggested tolerances for an independent float32 implementation.
ATOL = 1e-4
ATOL_UNET = 1e-5


def load_tensors(path: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """A safetensors file's tensors, on `device`."""
    return {name: tensor.to(device) for name, tensor in load_file(path).items()}


def load_tiny(module: nn.Module, folder: Path, prefix: str, device: torch.device | str = "cpu") -> nn.Module:
    """`module` on `device` in eval mode with the weights under `prefix` of the folder's
    tiny_weights.safetensors (strict load)."""
    return load_part(module, load_file(Path(folder) / "tiny_weights.safetensors"), prefix).to(device)


@dataclass
class CheckResult:
    name: str
    max_error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_error)) and self.max_error <= self.tolerance


def compare(name: str, ours, expected, tolerance: float = ATOL) -> CheckResult:
    """Max abs error, relative to max(1, |expected|) so large values get rtol = atol."""
    ours = np.asarray(ours.detach().cpu() if hasattr(ours, "detach") else ours, dtype=np.float64)
    expected = np.asarray(expected.detach().cpu() if hasattr(expected, "detach") else expected, dtype=np.float64)
    if ours.shape != expected.shape:
        return CheckResult(f"{name} (shape {ours.shape} != {expected.shape})", float("inf"), tolerance)
    err = np.abs(ours - expected) / np.maximum(1.0, np.abs(expected))
    return CheckResult(name, float(err.max()) if err.size else 0.0, tolerance)
