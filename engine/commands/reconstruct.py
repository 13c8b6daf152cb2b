"""`python -m engine reconstruct VIDEO --out BUNDLE_DIR [...]`: the flags are ReconstructOptions' fields."""

from __future__ import annotations

import argparse
import sys

from ..options import ReconstructOptions, from_args
from ..options import add_arguments as add_option_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option_arguments(parser, ReconstructOptions)


def run(args: argparse.Namespace) -> int:
    from ..pipeline.reconstruct import run_reconstruct

    options = from_args(ReconstructOptions, args)  # refuses a bad value before anything loads
    last = {}

    def progress(stage: str, fraction: float) -> None:
        percent = int(fraction * 100)
        if last.get(stage) != percent:
            last[stage] = percent
            print(f"{stage}: {percent}%", file=sys.stderr, flush=True)

    def log(level: str, message: str) -> None:
        print(f"{level}: {message}", file=sys.stderr, flush=True)

    path = run_reconstruct(options, progress, log=log)
    print(path)
    return 0
