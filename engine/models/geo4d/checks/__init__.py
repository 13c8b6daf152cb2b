"""Reproductions of the golden fixtures (../shared/fixtures/geo4d layout), one module per fixture file.

Each module in this package defines `FIXTURE` (the file name) and
`run(folder: Path, config: dict, device="cpu") -> list[CheckResult]`, where `config` is
`load_config(folder / "tiny_config.json")` and `device` is where the networks and the fixture's
tensors go. A module whose code does not run on that device says where it runs in `DEVICE`: "cpu"
(conversion-time code) or None (no tensors computed). `python -m engine check-fixtures FOLDER`
runs them all and prints one line each.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ...fixtures import CheckResult, compare, load_tensors  # noqa: F401 (the checks import them from here)
from ..checkpoint_keys import load_part

# The fixture README's suggested tolerances for an independent float32 implementation.
ATOL = 1e-4
ATOL_UNET = 1e-5


def load_tiny(module: nn.Module, folder: Path, prefix: str, device: torch.device | str = "cpu") -> nn.Module:
    """`module` on `device` in eval mode with the weights under `prefix` of the folder's
    tiny_weights.safetensors (strict load)."""
    return load_part(module, load_file(Path(folder) / "tiny_weights.safetensors"), prefix).to(device)
