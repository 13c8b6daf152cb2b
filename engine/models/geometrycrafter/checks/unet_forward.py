"""Fixture (a): the UNet forward, two `diff` cases and one `determ` case, with its intermediates
(time and added-time embeddings, conv_in, every down, mid and up block)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import part
from ..unet import SpatioTemporalUNet
from . import CheckResult, compare, load_tensors, load_tiny

FIXTURE = "unet_forward.safetensors"


def load_tiny_unet(folder: Path, config: dict, variant: str, device: torch.device | str = "cpu") -> SpatioTemporalUNet:
    """The folder's tiny `diff` or `determ` UNet (tiny_unet_<variant>.safetensors, strict load)."""
    name = f"unet_{variant}"
    return load_tiny(SpatioTemporalUNet.from_config(part(config, name)), folder, f"tiny_{name}.safetensors", device)


def _capture(unet: SpatioTemporalUNet, captured: dict) -> list:
    """Forward hooks storing what the fixture's hooks stored (a down block's first output)."""
    modules = {f"{name}_out": getattr(unet, name)
               for name in ("time_proj", "time_embedding", "add_time_proj", "add_embedding", "conv_in")}
    modules.update({f"down_blocks.{i}.out": block for i, block in enumerate(unet.down_blocks)})
    modules["mid_block.out"] = unet.mid_block
    modules.update({f"up_blocks.{i}.out": block for i, block in enumerate(unet.up_blocks)})

    def hook(name):
        return lambda module, inputs, output: captured.__setitem__(
            name, output[0] if isinstance(output, tuple) else output)

    return [module.register_forward_hook(hook(name)) for name, module in modules.items()]


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    data = load_tensors(Path(folder) / FIXTURE, device)
    results = []
    for case in sorted({key.split(".")[0] for key in data}):
        # Cases named determ* run the determ UNet, with the timestep as a python float (float64 inside
        # the forward, as the official pipeline passes it); the others the diff UNet with a tensor.
        determ = case.startswith("determ")
        unet = load_tiny_unet(folder, config, "determ" if determ else "diff", device)
        captured: dict[str, torch.Tensor] = {}
        hooks = _capture(unet, captured)
        try:
            timestep = data[f"{case}.timestep"][0]
            timestep = float(timestep) if determ else timestep
            captured["out"] = unet(data[f"{case}.sample"], timestep, data[f"{case}.encoder_hidden_states"],
                                   data[f"{case}.added_time_ids"])
        finally:
            for h in hooks:
                h.remove()
        results += [compare(f"{case}.{key}", value, data[f"{case}.{key}"]) for key, value in captured.items()]
    return results
