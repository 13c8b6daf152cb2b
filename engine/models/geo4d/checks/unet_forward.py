"""Fixture (a): the UNet forward, two cases (t=799/fs=24 and t=0/fs=7), with its intermediates."""

from __future__ import annotations

from pathlib import Path

import torch

from . import ATOL_UNET, CheckResult, compare, load_tensors, load_tiny
from ..config import unet_params
from ..checkpoint_keys import UNET_PREFIX
from ..unet import UNet3D

FIXTURE = "unet_forward.safetensors"


def load_tiny_unet(folder: Path, config: dict, device: torch.device | str = "cpu") -> UNet3D:
    """The fixture folder's tiny UNet with its weights (strict load), on `device`."""
    return load_tiny(UNet3D.from_params(unet_params(config)), folder, UNET_PREFIX, device)


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    data = load_tensors(Path(folder) / FIXTURE, device)
    unet = load_tiny_unet(folder, config, device)
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        unet.init_attn.register_forward_hook(lambda m, i, o: captured.__setitem__("after_init_attn", o)),
        unet.middle_block.register_forward_hook(lambda m, i, o: captured.__setitem__("middle_block_out", o)),
    ]
    results = []
    try:
        for case in sorted({key.split(".")[0] for key in data}):
            get = lambda name: data[f"{case}.{name}"]  # noqa: E731
            frames = get("x_in").shape[2]
            with torch.no_grad():
                x_in = torch.cat([get("x_noisy"), get("c_concat")], dim=1)
                out = unet(x_in, get("t"), get("context"), get("fs"))
                ours = {
                    "x_in": x_in,
                    "time_embed_out": unet.time_embedding(get("t"), torch.float32),
                    "fps_embed_out": unet.fps_embed(get("fs"), torch.float32),
                    "context_per_frame": unet.frame_context(get("context"), frames),
                    **captured,
                    "out": out,
                }
            results += [compare(f"{case}.{name}", value, get(name), ATOL_UNET) for name, value in ours.items()]
    finally:
        for hook in hooks:
            hook.remove()
    return results
