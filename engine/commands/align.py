"""`python -m engine align WINDOWS --out BUNDLE_DIR [options]`: fuse window predictions into a bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..alignment.align import AlignOptions, align, down_weighted_note
from ..formats.bundle import write_bundle
from ..windows.predictions import load_windows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = AlignOptions()
    parser.add_argument("windows", type=Path,
                        help="window predictions (docs/formats.md): a folder such as a bundle's `windows`, "
                             "or a version-1 .npz")
    parser.add_argument("--out", required=True, type=Path, help="bundle folder to write (replaced only on success)")
    parser.add_argument("--per-frame-focal", action="store_true", help="one focal length per frame (zoom shots)")
    parser.add_argument("--no-rays", action="store_true", help="cameras from the point maps instead of the rays")
    parser.add_argument("--no-disparity", action="store_true", help="depth from the point maps only")
    parser.add_argument("--no-robust", action="store_true", help="plain least squares: keep disagreeing windows")
    parser.add_argument("--smoothness", type=float, default=defaults.smoothness,
                        help=f"temporal smoothness of the camera track, 0 = none (default {defaults.smoothness})")
    parser.add_argument("--point-stride", type=int, default=2, help="keep every k-th pixel for the point clouds")
    parser.add_argument("--min-confidence", type=float, default=0.0, help="drop points at or below this confidence")


def run(args: argparse.Namespace) -> int:
    windows = load_windows(args.windows)
    options = AlignOptions(per_frame_focal=args.per_frame_focal, use_rays=not args.no_rays,
                           use_disparity=not args.no_disparity, robust=not args.no_robust,
                           smoothness=args.smoothness)
    recon = align(windows, options)
    out = write_bundle(recon, args.out, windows=windows, point_stride=args.point_stride,
                       min_confidence=args.min_confidence)
    centres = recon.camera_to_world[:, :3, 3]
    path = float(np.linalg.norm(np.diff(centres, axis=0), axis=1).sum())
    focal = recon.K[:, 0, 0]
    valid = float((recon.depth > 0).mean())
    facts = recon.metadata["alignment"]
    print(f"aligned {windows.num_frames} frames from {windows.num_windows} windows in {facts['seconds']:.2f} s")
    print(f"  focal {focal.min():.1f}-{focal.max():.1f} px, camera path {path:.3g} units, "
          f"valid depth {100 * valid:.1f} %")
    print(f"  {down_weighted_note(windows, recon) or 'every window agreed with the others'}")
    print(f"wrote {out}")
    return 0
