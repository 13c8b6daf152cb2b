"""What every golden-fixture check returns, and how it compares (Geo4D's and GeometryCrafter's
`checks` packages; `python -m engine check-fixtures` prints the results)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class CheckResult:
    name: str
    max_error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_error)) and self.max_error <= self.tolerance


def compare(name: str, ours, expected, tolerance: float = 1e-4) -> CheckResult:
    """Max abs error, relative to max(1, |expected|) so large values get rtol = atol."""
    ours = np.asarray(ours.detach().cpu() if hasattr(ours, "detach") else ours, dtype=np.float64)
    expected = np.asarray(expected.detach().cpu() if hasattr(expected, "detach") else expected, dtype=np.float64)
    if ours.shape != expected.shape:
        return CheckResult(f"{name} (shape {ours.shape} != {expected.shape})", float("inf"), tolerance)
    err = np.abs(ours - expected) / np.maximum(1.0, np.abs(expected))
    return CheckResult(name, float(err.max()) if err.size else 0.0, tolerance)


def load_tensors(path: Path, device="cpu") -> dict:
    """A safetensors file's tensors, on `device`."""
    from safetensors.torch import load_file

    return {name: tensor.to(device) for name, tensor in load_file(path).items()}
