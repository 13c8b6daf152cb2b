"""`parallax reconstruct VIDEO --out BUNDLE_DIR [...]`: the flags are ReconstructOptions' fields. Progress and
warnings go to stderr (a bar per stage on a terminal), the summary of the bundle to stdout."""

from __future__ import annotations

import argparse

from ..formats.bundle import read_bundle
from ..options import ReconstructOptions, from_args
from ..options import add_arguments as add_option_arguments
from .terminal import ConsoleProgress, summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option_arguments(parser, ReconstructOptions)


def run(args: argparse.Namespace) -> int:
    from ..pipeline.reconstruct import run_reconstruct

    options = from_args(ReconstructOptions, args)  # refuses a bad value before anything loads
    with ConsoleProgress() as console:
        path = run_reconstruct(options, console.progress, log=console.log, planned=console.plan)
    print(summary(read_bundle(path), console.warnings))
    return 0
