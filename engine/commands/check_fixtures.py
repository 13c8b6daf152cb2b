"""`python -m engine check-fixtures FOLDER`: reproduce a folder of golden fixtures.

The folder's `tiny_config.json` says which model it is for (Geo4D: a `yaml_equivalent`;
GeometryCrafter: `modules` with its UNets). Runs every module of that model's `checks` package
(`engine/models/<model>/checks/`, one module per fixture file, including the full-size state-dict
manifest) on the folder, prints one line per result with the max error and the tolerance, and
exits 1 on any miss or missing file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
from pathlib import Path
from types import ModuleType

from ..errors import InputError
from ..models.fixtures import CheckResult

# model name -> its package (with `config.load_config` and a `checks` package)
MODELS = {"geo4d": "engine.models.geo4d", "geometrycrafter": "engine.models.geometrycrafter"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="fixture folder (layout of ../shared/fixtures/<model>/README.md)")
    parser.add_argument("--only", default="", help="run only check modules whose name contains this text")
    parser.add_argument("--device", default="cpu",
                        help="where the networks run: cpu (default) or cuda (float32 with TF32 off)")


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
    return importlib.import_module(f"{MODELS[model]}.checks")


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
    config = importlib.import_module(f"{MODELS[model]}.config").load_config(Path(folder) / "tiny_config.json")
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


def run(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    model = model_of(folder)
    import torch

    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but PyTorch sees no CUDA GPU",
                         "run on a machine with a CUDA GPU and a CUDA build of PyTorch, or use --device cpu")
    results = run_checks(folder, args.only, args.device)
    misses = 0
    print(f"{model} fixtures in {folder}")
    for fixture, r in results:
        misses += not r.ok
        print(f"{'ok  ' if r.ok else 'MISS'} {fixture:<28} {r.name:<48} max error {r.max_error:.3g}"
              f"  (tolerance {r.tolerance:.3g})")
    print(f"computed on {where_checks_run(model, args.device, args.only)}")
    print(f"{len(results) - misses}/{len(results)} checks within tolerance")
    return 1 if misses or not results else 0
