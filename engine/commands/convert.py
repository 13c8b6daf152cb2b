"""`python -m engine convert geo4d --model-ckpt model.ckpt --vae-ckpt vae.ckpt --out DIR [--dtype fp16]`."""

from __future__ import annotations

import argparse

from ..models.geo4d.config import OFFICIAL_CONFIG


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=["geo4d"], help="which model's checkpoints to convert")
    parser.add_argument("--model-ckpt", required=True, help="Geo4D model.ckpt (about 10 GB)")
    parser.add_argument("--vae-ckpt", required=True, help="Geo4D vae.ckpt (the fine-tuned point-map VAE)")
    parser.add_argument("--out", required=True, help="model directory to write (e.g. ~/.cache/parallax/models/geo4d)")
    parser.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16",
                        help="storage precision of the weights (default fp16)")
    parser.add_argument("--config", default=str(OFFICIAL_CONFIG),
                        help="architecture config (default: the official Geo4D one; tests pass a fixture "
                             "folder's tiny_config.json)")


def run(args: argparse.Namespace) -> int:
    from ..models.geo4d.convert import convert_geo4d

    convert_geo4d(args.model_ckpt, args.vae_ckpt, args.out, args.dtype, args.config)
    return 0
