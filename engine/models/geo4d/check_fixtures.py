"""Reproducing a folder of Geo4D golden fixtures (`python -m engine check-fixtures FOLDER`).

Runs every module of `engine/models/geo4d/checks/` on the folder (its tiny configuration is read
from its `tiny_config.json`; `checks/full_manifest.py` is the full-size state-dict check).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from . import checks
from .checks import CheckResult
from .config import load_config


def check_modules() -> list:
    """The check modules, in name order."""
    return [importlib.import_module(f"{checks.__name__}.{info.name}") for info in _check_infos()]


def _check_infos() -> list:
    return sorted(pkgutil.iter_modules(checks.__path__), key=lambda m: m.name)


def strict_float32() -> None:
    """No TF32 in float32 matmuls and cuDNN convolutions: torch lets cuDNN convolutions use it by
    default on Ampere and later GPUs, ~1e-3 relative error, far beyond the fixtures' tolerances."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def run_checks(folder: Path, only: str = "", device: str = "cpu") -> list[tuple[str, CheckResult]]:
    """[(fixture file, result)] for every check module whose fixture file is in `folder`, its
    networks and tensors on `device` (a module's `DEVICE` overrides that: see `checks`)."""
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))  # the fixtures were made with 2 threads
    if torch.device(device).type == "cuda":
        strict_float32()
    config = load_config(folder / "tiny_config.json")
    results = []
    for info in _check_infos():
        if only and only not in info.name:
            continue
        # A check whose import fails (open_clip missing, say) is a miss named by its module.
        fixture = f"checks/{info.name}.py"
        try:
            module = importlib.import_module(f"{checks.__name__}.{info.name}")
            fixture = module.FIXTURE
            if not (folder / fixture).is_file():
                results.append((fixture, CheckResult(f"{fixture} is missing from the folder", float("inf"), 0.0)))
                continue
            with torch.no_grad():
                results.extend((fixture, r) for r in module.run(folder, config, device))
        except Exception as exc:  # a fixture file that does not follow the layout is a miss, not a crash
            results.append((fixture, CheckResult(f"failed: {type(exc).__name__}: {exc}", float("inf"), 0.0)))
    return results


def where_checks_run(device: str, only: str = "") -> str:
    """Where each check computed its tensors: `device`, or its module's `DEVICE`. Modules that do
    not import are left out (run_checks reports them)."""
    places: dict[str, list[str]] = {}
    for info in _check_infos():
        if only and only not in info.name:
            continue
        try:
            module = importlib.import_module(f"{checks.__name__}.{info.name}")
        except ImportError:
            continue
        place = getattr(module, "DEVICE", device)
        places.setdefault("no tensors" if place is None else place, []).append(module.FIXTURE)
    return "; ".join(f"{place}: {', '.join(fixtures)}" for place, fixtures in places.items())
