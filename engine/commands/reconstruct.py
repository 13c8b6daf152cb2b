"""`python -m engine reconstruct VIDEO --out BUNDLE_DIR [...]`."""

from __future__ import annotations

import argparse
import sys

from ..devices import DEVICE_HELP
from ..errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="the clip: a video OpenCV reads, or an image sequence (a folder of numbered "
                                      "frames or one frame's file; PNG, TIFF, JPEG, BMP, EXR)")
    parser.add_argument("--out", required=True, help="bundle folder to write (replaced only on success)")
    parser.add_argument("--model", default="geo4d", choices=["geo4d"])
    parser.add_argument("--model-dir", default=None,
                        help="converted model directory "
                             "(default $PARALLAX_MODEL_DIR or ~/.cache/parallax/models/geo4d)")
    parser.add_argument("--stride", type=int, default=4, help="frames between window starts, 1-15 (default 4)")
    parser.add_argument("--steps", type=int, default=5, help="DDIM steps (default 5, as Geo4D)")
    parser.add_argument("--device", default=None, help=DEVICE_HELP)
    parser.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default=None,
                        help="default fp16 on cuda and mps, fp32 on cpu; cuda runs fp16, bf16 (Ampere and later) "
                             "and fp32, mps fp16 and fp32, cpu fp32 and bf16")
    parser.add_argument("--runtime", choices=["torch", "onnx"], default="torch")
    parser.add_argument("--frames", default=None, metavar="A:B", help="frame range [A, B) of the clip (0-based)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="processing size, multiples of 64 (default: about 320x512 at the clip's aspect)")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--window-batch", type=int, default=1, help="windows denoised together")
    parser.add_argument("--point-stride", type=int, default=2, help="keep every k-th pixel in the point clouds")
    parser.add_argument("--fps", type=float, default=None,
                        help="frames per second where the clip stores none: image sequences (default 24)")


def parse_frames(text: str | None) -> tuple[int, int | None]:
    if not text:
        return 0, None
    try:
        a, b = text.split(":")
        return int(a or 0), (int(b) if b else None)
    except ValueError:
        raise InputError(f"--frames {text!r} is not a range", "write it as A:B, e.g. --frames 0:48") from None


def run(args: argparse.Namespace) -> int:
    from ..pipeline.reconstruct import ReconstructOptions, run_reconstruct

    # ReconstructOptions turns the strings and lists into paths and tuples.
    options = ReconstructOptions(
        video=args.video, out=args.out, model=args.model, model_dir=args.model_dir, stride=args.stride,
        steps=args.steps, device=args.device, precision=args.precision, runtime=args.runtime,
        frames=parse_frames(args.frames), size=args.size, seed=args.seed, window_batch=args.window_batch,
        point_stride=args.point_stride, fps=args.fps)
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
