"""`python -m engine align WINDOWS --out BUNDLE_DIR [options]`: fuse window predictions into a bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..alignment.align import align, alignment_notes
from ..formats.bundle import check_bundle_target, read_bundle, write_bundle
from ..options import AlignOptions, BundleOptions, from_args
from ..options import add_arguments as add_option_arguments
from ..windows.predictions import load_windows
from .terminal import summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("windows", type=Path,
                        help="window predictions (docs/formats.md): a folder such as a bundle's `windows`, "
                             "or a version-1 .npz")
    parser.add_argument("--out", required=True, type=Path, help="bundle folder to write (replaced only on success)")
    add_option_arguments(parser, AlignOptions)
    add_option_arguments(parser, BundleOptions)


def run(args: argparse.Namespace) -> int:
    options, bundle = from_args(AlignOptions, args), from_args(BundleOptions, args)
    inputs = {"window predictions": args.windows}
    check_bundle_target(args.out, inputs)  # before the alignment runs, not after
    windows = load_windows(args.windows)
    recon = align(windows, options)
    out = write_bundle(recon, args.out, windows=windows, point_stride=bundle.point_stride,
                       min_confidence=bundle.min_confidence, inputs=inputs,
                       window_storage=bundle.window_storage)
    valid = float((recon.depth > 0).mean())
    facts = recon.metadata["alignment"]
    print(f"aligned {windows.num_frames} frames from {windows.num_windows} windows in {facts['seconds']:.2f} s, "
          f"valid depth {100 * valid:.1f} %")
    notes = alignment_notes(windows, recon, None)  # window predictions carry no plate size
    for note in (note for level, note in notes if level == "info"):
        print(f"  {note}")
    print(summary(read_bundle(out), [note for level, note in notes if level == "warning"]))
    return 0

