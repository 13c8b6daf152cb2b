"""`python -m engine convert geo4d --model-ckpt model.ckpt --vae-ckpt vae.ckpt --out DIR [--dtype fp16]`, or
`python -m engine convert geometrycrafter --download-dir DIR --out DIR [--dtype fp16]`."""

from __future__ import annotations

import argparse

from ..errors import InputError
from ..models.geo4d.config import OFFICIAL_CONFIG


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=["geo4d", "geometrycrafter"], help="which model's checkpoints to convert")
    parser.add_argument("--model-ckpt", help="Geo4D model.ckpt (about 10 GB)")
    parser.add_argument("--vae-ckpt", help="Geo4D vae.ckpt (the fine-tuned point-map VAE)")
    parser.add_argument("--download-dir", help="GeometryCrafter: the folder `download geometrycrafter` filled "
                                               "(<owner>/<name>/<file> of the three hub repositories)")
    parser.add_argument("--out", required=True, help="model directory to write (e.g. ~/.cache/parallax/models/geo4d)")
    parser.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16",
                        help="storage precision of the weights (default fp16)")
    parser.add_argument("--config", default=str(OFFICIAL_CONFIG),
                        help="Geo4D: architecture config (default: the official Geo4D one; tests pass a fixture "
                             "folder's tiny_config.json)")


def run(args: argparse.Namespace) -> int:
    if args.model == "geometrycrafter":
        if not args.download_dir:
            raise InputError("convert geometrycrafter needs the downloaded files",
                             "pass --download-dir (the folder `python -m engine download geometrycrafter` filled)")
        from ..models.geometrycrafter.hub import convert_geometrycrafter

        convert_geometrycrafter(args.download_dir, args.out, args.dtype)
        return 0
    if not args.model_ckpt or not args.vae_ckpt:
        raise InputError("convert geo4d needs both checkpoints", "pass --model-ckpt model.ckpt --vae-ckpt vae.ckpt")
    from ..models.geo4d.convert import convert_geo4d

    convert_geo4d(args.model_ckpt, args.vae_ckpt, args.out, args.dtype, args.config)
    return 0
