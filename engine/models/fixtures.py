"""Golden-fixture checks: which model a fixture folder is for, running its model's `checks` package
(`engine/models/<model>/checks/`, one module per fixture file, including the full-size state-dict
manifest), what every check returns and how it compares. `python -m engine check-fixtures` prints
the results."""

from __future__ import annotations

import importlib
import json
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from ..errors import InputError
from . import model_package


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




def model_of(folder: Path) -> str:
    """Which model a fixture folder is for, from its tiny_config.json."""
    path = Path(folder) / "tiny_config.json"
    if not path.is_file():
        raise InputError(f"{folder} has no tiny_config.json: it is not a golden-fixture folder",
                         "pass a folder laid out as ../shared/fixtures/geo4d or ../shared/fixtures/geometrycrafter "
                         "(see its README.md)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} cannot be read as JSON ({exc})", "restore the fixture folder's tiny_config.json")
    if "yaml_equivalent" in data:
        return "geo4d"
    if "unet_diff" in data.get("modules", {}):
        return "geometrycrafter"
    raise InputError(f"{path} is neither a Geo4D nor a GeometryCrafter tiny configuration",
                     "pass a folder laid out as ../shared/fixtures/geo4d or ../shared/fixtures/geometrycrafter")


def _checks(model: str) -> ModuleType:
    return importlib.import_module(f"{model_package(model).__name__}.checks")


def _check_infos(model: str) -> list:
    return sorted(pkgutil.iter_modules(_checks(model).__path__), key=lambda m: m.name)


def check_modules(model: str = "geo4d") -> list:
    """The model's check modules, in name order."""
    package = _checks(model).__name__
    return [importlib.import_module(f"{package}.{info.name}") for info in _check_infos(model)]


def strict_float32() -> None:
    """No TF32 in float32 matmuls and cuDNN convolutions: torch lets cuDNN convolutions use it by
    default on Ampere and later GPUs, ~1e-3 relative error, far beyond the fixtures' tolerances."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def run_checks(folder: Path, only: str = "", device: str = "cpu") -> list[tuple[str, CheckResult]]:
    """[(fixture file, result)] for every check module of the folder's model whose fixture file is
    in `folder`, its networks and tensors on `device` (a module's `DEVICE` overrides that: see the
    model's `checks`)."""
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))  # the fixtures were made with 1-2 threads
    if torch.device(device).type == "cuda":
        strict_float32()
    model = model_of(folder)
    config = importlib.import_module(f"{model_package(model).__name__}.config").load_config(
        Path(folder) / "tiny_config.json")
    package = _checks(model).__name__
    results = []
    for info in _check_infos(model):
        if only and only not in info.name:
            continue
        # A check whose import fails (open_clip missing, say) is a miss named by its module.
        fixture = f"checks/{info.name}.py"
        try:
            module = importlib.import_module(f"{package}.{info.name}")
            fixture = module.FIXTURE
            if not (folder / fixture).is_file():
                results.append((fixture, CheckResult(f"{fixture} is missing from the folder", float("inf"), 0.0)))
                continue
            with torch.no_grad():
                results.extend((fixture, r) for r in module.run(folder, config, device))
        except Exception as exc:  # a fixture file that does not follow the layout is a miss, not a crash
            results.append((fixture, CheckResult(f"failed: {type(exc).__name__}: {exc}", float("inf"), 0.0)))
    return results


def where_checks_run(model: str, device: str, only: str = "") -> str:
    """Where each check computed its tensors: `device`, or its module's `DEVICE`. Modules that do
    not import are left out (run_checks reports them)."""
    places: dict[str, list[str]] = {}
    package = _checks(model).__name__
    for info in _check_infos(model):
        if only and only not in info.name:
            continue
        try:
            module = importlib.import_module(f"{package}.{info.name}")
        except ImportError:
            continue
        place = getattr(module, "DEVICE", device)
        places.setdefault("no tensors" if place is None else place, []).append(module.FIXTURE)
    return "; ".join(f"{place}: {', '.join(fixtures)}" for place, fixtures in places.items())
