"""`python -m engine download geo4d|geometrycrafter [--accept-licences] [--download-dir DIR] [--out DIR]
[--no-convert]`, with `--mirror URL` (Geo4D) or `--endpoint URL --token T` (GeometryCrafter, from the hub)."""

from __future__ import annotations

import argparse

from ..models.download import DOWNLOAD_ROOT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=["geo4d", "geometrycrafter"], help="which model to download")
    parser.add_argument("--download-dir", default=None,
                        help=f"where the downloaded files go (default {DOWNLOAD_ROOT}/<model>)")
    parser.add_argument("--out", default=None,
                        help="model directory to convert into (default $PARALLAX_MODEL_DIR or "
                             "~/.cache/parallax/models/<model>)")
    parser.add_argument("--mirror", default=None,
                        help="Geo4D: base URL of a mirror serving model.ckpt and vae.ckpt (e.g. an internal server) "
                             "instead of Google Drive")
    parser.add_argument("--endpoint", default=None,
                        help="GeometryCrafter: the Hugging Face hub's address (default $HF_ENDPOINT or "
                             "https://huggingface.co; a mirror of the hub)")
    parser.add_argument("--token", default=None,
                        help="GeometryCrafter: a Hugging Face token (default $HF_TOKEN or the saved login); "
                             "Stable Video Diffusion's repository is gated")
    parser.add_argument("--accept-licences", action="store_true",
                        help="accept the licences it prints (Geo4D: research release, Apache-2.0, CreativeML Open "
                             "RAIL++-M, MIT; GeometryCrafter: research-only, Stability AI Community License, MIT) "
                             "without asking")
    parser.add_argument("--no-convert", action="store_true", help="only download and verify")


def run(args: argparse.Namespace) -> int:
    if args.model == "geometrycrafter":
        from ..models.download import download_geometrycrafter_model

        return download_geometrycrafter_model(args.download_dir, args.out, args.endpoint, args.token,
                                              args.accept_licences, convert=not args.no_convert)
    from ..models.download import download_geo4d

    return download_geo4d(args.download_dir, args.out, args.mirror, args.accept_licences, convert=not args.no_convert)
