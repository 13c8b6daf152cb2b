"""`python -m engine download geo4d [--download-dir DIR] [--out DIR] [--mirror URL] [--no-convert]`."""

from __future__ import annotations

import argparse

from ..models.download import DOWNLOAD_ROOT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=["geo4d"], help="which model to download")
    parser.add_argument("--download-dir", default=None,
                        help=f"where the checkpoints go (default {DOWNLOAD_ROOT}/geo4d)")
    parser.add_argument("--out", default=None,
                        help="model directory to convert into (default $PARALLAX_MODEL_DIR or "
                             "~/.cache/parallax/models/geo4d)")
    parser.add_argument("--mirror", default=None,
                        help="base URL of a mirror serving model.ckpt and vae.ckpt (e.g. an internal server) "
                             "instead of Google Drive")
    parser.add_argument("--no-convert", action="store_true", help="only download and verify")


def run(args: argparse.Namespace) -> int:
    from ..models.download import download_geo4d

    return download_geo4d(args.download_dir, args.out, args.mirror, convert=not args.no_convert)
