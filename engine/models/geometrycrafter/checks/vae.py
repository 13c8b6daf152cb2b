"""Fixture (b): the SVD VAE's encoder, posterior, chunked video encoding and temporal decoder."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import part
from ..svd_vae import AutoencoderKLTemporalDecoder, encode_vae_video
from . import CheckResult, compare, load_tensors, load_tiny

FIXTURE = "vae.safetensors"
WEIGHTS = "tiny_vae.safetensors"
ENCODE_CHUNK = 2  # the fixture's encode_vae_video chunk size


def load_tiny_vae(folder: Path, config: dict, device: torch.device | str = "cpu") -> AutoencoderKLTemporalDecoder:
    return load_tiny(AutoencoderKLTemporalDecoder.from_config(part(config, "vae")), folder, WEIGHTS, device)


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    fx = load_tensors(Path(folder) / FIXTURE, device)
    vae = load_tiny_vae(folder, config, device)
    frames = fx["encode.frames"]
    encoder_out = vae.encoder(frames)
    posterior = vae.encode(frames)
    return [
        compare("vae.encoder_out", encoder_out, fx["encode.encoder_out"]),
        compare("vae.moments", vae.quant_conv(encoder_out), fx["encode.moments"]),
        compare("vae.mean", posterior.mean, fx["encode.mean"]),
        compare("vae.logvar", posterior.logvar, fx["encode.logvar"]),
        compare("vae.std", posterior.std, fx["encode.std"]),
        compare("vae.encode_vae_video", encode_vae_video(vae, frames, ENCODE_CHUNK),
                fx["encode.pipeline_encode_vae_video"]),
        compare("vae.temporal_decode", vae.decode(fx["decode.z"], num_frames=fx["decode.z"].shape[0]),
                fx["decode.out"]),
    ]
