"""`python -m engine check-fixtures FOLDER`: reproduce a folder of Geo4D golden fixtures.

Runs every module of `engine/models/geo4d/checks/` on the folder (its tiny configuration is read
from its `tiny_config.json`; `checks/full_manifest.py` is the full-size state-dict check), prints
one line per result with the max error and the tolerance, and exits 1 on any miss or missing file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from pathlib import Path

from ...errors import InputError
from . import checks
from .checks import CheckResult
from .config import load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="fixture folder (layout of ../shared/fixtures/geo4d/README.md)")
    parser.add_argument("--only", default="", help="run only check modules whose name contains this text")


def check_modules() -> list:
    """The check modules, in name order."""
    return [importlib.import_module(f"{checks.__name__}.{info.name}")
            for info in sorted(pkgutil.iter_modules(checks.__path__), key=lambda m: m.name)]


def run_checks(folder: Path, only: str = "") -> list[tuple[str, CheckResult]]:
    """[(fixture file, result)] for every check module whose fixture file is in `folder`."""
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))  # the fixtures were made with 2 threads
    config = load_config(folder / "tiny_config.json")
    results = []
    for module in check_modules():
        if only and only not in module.__name__.rsplit(".", 1)[-1]:
            continue
        fixture = module.FIXTURE
        if not (folder / fixture).is_file():
            results.append((fixture, CheckResult(f"{fixture} is missing from the folder", float("inf"), 0.0)))
            continue
        try:
            with torch.no_grad():
                results.extend((fixture, r) for r in module.run(folder, config))
        except Exception as exc:  # a fixture file that does not follow the layout is a miss, not a crash
            results.append((fixture, CheckResult(f"failed: {type(exc).__name__}: {exc}", float("inf"), 0.0)))
    return results


def run(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not (folder / "tiny_config.json").is_file():
        raise InputError(f"{folder} has no tiny_config.json: it is not a Geo4D fixture folder",
                         "pass a folder laid out as ../shared/fixtures/geo4d (see its README.md)")
    results = run_checks(folder, args.only)
    misses = 0
    for fixture, r in results:
        misses += not r.ok
        print(f"{'ok  ' if r.ok else 'MISS'} {fixture:<28} {r.name:<48} max error {r.max_error:.3g}"
              f"  (tolerance {r.tolerance:.3g})")
    print(f"{len(results) - misses}/{len(results)} checks within tolerance")
    return 1 if misses or not results else 0
