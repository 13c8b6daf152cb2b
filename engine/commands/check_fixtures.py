"""`python -m engine check-fixtures FOLDER [--only TEXT] [--device cuda]`: reproduce golden fixtures.

The folder's `tiny_config.json` says which model it is for (Geo4D or GeometryCrafter). Prints one
line per result with the max error and the tolerance, and exits 1 on any miss or missing file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..models.fixtures import model_of, run_checks, where_checks_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="fixture folder (layout of ../shared/fixtures/<model>/README.md)")
    parser.add_argument("--only", default="", help="run only check modules whose name contains this text")
    parser.add_argument("--device", default="cpu",
                        help="where the networks run: cpu (default) or cuda (float32 with TF32 off)")


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
