"""Fixture (b): VAE encode, decode, point-map decode with the uncertainty head, diffusion-space decode."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from ..config import model_params, pointmap_vae_params, vae_params
from ..checkpoint_keys import FIRST_STAGE_PREFIX, POINTMAP_VAE_PREFIX, load_part
from ..vae import AutoencoderKL, decode_frames
from . import CheckResult, compare, load_tensors

FIXTURE = "vae.safetensors"


def load_tiny_vaes(folder: Path, config: dict,
                   device: torch.device | str = "cpu") -> tuple[AutoencoderKL, AutoencoderKL]:
    """The fixture folder's tiny first-stage VAE and point-map VAE with their weights (strict loads),
    on `device`."""
    folder = Path(folder)
    vae = load_part(AutoencoderKL(vae_params(config)), load_file(folder / "tiny_weights.safetensors"),
                    FIRST_STAGE_PREFIX)
    pointmap_vae = load_part(AutoencoderKL(pointmap_vae_params(config)),
                             load_file(folder / "tiny_pointmap_vae.safetensors"), POINTMAP_VAE_PREFIX)
    return vae.to(device), pointmap_vae.to(device)


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    fx = load_tensors(Path(folder) / FIXTURE, device)
    vae, pm = load_tiny_vaes(folder, config, device)
    scale = model_params(config)["scale_factor"]
    with torch.no_grad():
        images = fx["encode.images"]
        encoder_out = vae.encoder(images)
        posterior = vae.encode(images)
        return [
            compare("vae.encoder_out", encoder_out, fx["encode.encoder_out"]),
            compare("vae.moments", vae.quant_conv(encoder_out), fx["encode.moments"]),
            compare("vae.posterior_mean", posterior.mean, fx["encode.posterior_mean"]),
            compare("vae.posterior_logvar", posterior.logvar, fx["encode.posterior_logvar"]),
            compare("vae.posterior_std", posterior.std, fx["encode.posterior_std"]),
            compare("vae.decode", vae.decode(fx["decode.z"]), fx["decode.out"]),
            compare("vae.pointmap_decode_conf", pm.decode_with_confidence(fx["decode.z"]), fx["decode_pm_conf.out"]),
            compare("vae.decode_first_stage", decode_frames(vae, fx["scaled.z_bcthw"], scale),
                    fx["scaled.decode_first_stage"]),
            compare("vae.decode_pm_confhead", decode_frames(pm, fx["scaled.z_bcthw"], scale, with_confidence=True),
                    fx["scaled.decode_pm_confhead"]),
        ]
