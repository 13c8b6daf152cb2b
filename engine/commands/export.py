"""`python -m engine export BUNDLE --format colmap|nerfstudio|chan|usd|ply|depth [--out DIR]`: a bundle for other
tools."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from .. import export as export_package
from ..errors import InputError
from ..export import FORMATS
from ..export.options import CloudOptions, ExportOptions
from ..export.shot import load_shot
from ..export.target import check_export_target, export_folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cloud = CloudOptions()
    parser.add_argument("bundle", type=Path, help="the bundle folder (written by reconstruct or align)")
    parser.add_argument("--format", required=True, choices=list(FORMATS), help="what to write (README: export formats)")
    parser.add_argument("--out", type=Path,
                        help="folder to write (default: BUNDLE_FORMAT beside the bundle); an earlier export there is "
                             "replaced, any other non-empty folder refused")
    parser.add_argument("--clip", type=Path, help="the footage, when not at the bundle's source_clip path "
                                                  "(colmap and nerfstudio write its frames, depth is guided by them)")
    parser.add_argument("--voxel-size", type=float, default=cloud.voxel_size,
                        help="merged cloud: voxel edge in scene units (0 = two pixels' footprint at the median depth)")
    parser.add_argument("--confidence-quantile", type=float, default=cloud.confidence_quantile,
                        help=f"merged cloud: drop points below this quantile of confidence "
                             f"(default {cloud.confidence_quantile})")
    parser.add_argument("--keep-moving", action="store_true", help="merged cloud: keep the points found to move")


def run(args: argparse.Namespace) -> int:
    if args.voxel_size < 0 or not 0 <= args.confidence_quantile < 1:
        raise InputError("--voxel-size must be >= 0 and --confidence-quantile in [0, 1)", "pass values in range")
    shot = load_shot(args.bundle)
    out = args.out or args.bundle.absolute().parent / f"{args.bundle.absolute().name}_{args.format}"
    clip = args.clip or (Path(shot.bundle.source_clip) if shot.bundle.source_clip else None)
    out = check_export_target(out, [args.bundle] + ([clip] if clip else []))
    options = ExportOptions(clip=args.clip, cloud=CloudOptions(voxel_size=args.voxel_size,
                                                               confidence_quantile=args.confidence_quantile,
                                                               keep_moving=args.keep_moving))
    writer = importlib.import_module(FORMATS[args.format][0], export_package.__name__)
    with export_folder(out, args.format, args.bundle) as folder:
        summary = writer.write(shot, folder, options)
    print(summary)
    print(f"wrote {out}")
    return 0
