"""Loading a converted Geo4D model directory (model_dir.py) into its three networks.

The directory is verified against its manifest first, and every module is loaded strictly, so a
missing, truncated or foreign file is named instead of half-loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from ...errors import ModelError
from .config import pointmap_vae_params, unet_params, vae_params
from .manifest import compare_shapes, state_shapes
from .model_dir import LAYOUT, verify_model_dir
from .unet import UNet3D
from .vae import AutoencoderKL


@dataclass
class Geo4DModules:
    """A loaded Geo4D model.

    Attributes:
        unet: the 3D UNet, in -> [B, 20, T, h, w], out [B, 16, T, h, w].
        vae: the first-stage SD VAE (without adaptors) for frames, rays, moments and disparity.
        pointmap_vae: the fine-tuned point-map VAE's decoder with its uncertainty adaptor.
        context: float32[1, 77 + 16*16, C], the constant cross-attention context.
        config: the official-style params (load_config layout).
        directory: where it was loaded from.
    """

    unet: torch.nn.Module
    vae: torch.nn.Module
    pointmap_vae: torch.nn.Module
    context: torch.Tensor
    config: dict
    directory: Path


def build_modules(config: dict) -> dict[str, torch.nn.Module]:
    """The three inference networks for `config`, randomly initialised (use a meta-device context
    to build them without memory)."""
    return {
        "unet": UNet3D.from_params(unet_params(config)),
        "vae": AutoencoderKL(vae_params(config)),
        "pointmap_vae": AutoencoderKL(pointmap_vae_params(config)),
    }


# The parts of the checkpoints that window inference never runs (model.py, postprocess.py): point maps are
# decoded, never encoded; frames are encoded without the encoder adaptor; and only the point-map decoder has
# its uncertainty head run. The files keep them, so a strict load still checks every tensor; dropped after
# it, they hold no memory while the model runs (0.13 GiB of the full-size model in float32).
NOT_RUN = {"vae": ("encoder_adaptor", "decoder_adaptor"),
           "pointmap_vae": ("encoder", "quant_conv", "encoder_adaptor")}


def drop_not_run(name: str, module: torch.nn.Module) -> torch.nn.Module:
    """`module`, the network `name` of `build_modules`, without its NOT_RUN parts (removed in place)."""
    for part in NOT_RUN.get(name, ()):
        delattr(module, part)
    return module


def check_state_dicts(config: dict, states: dict[str, dict[str, torch.Tensor]]) -> None:
    """Raise ModelError unless each state dict has exactly the keys and shapes of its module."""
    with torch.device("meta"):
        modules = build_modules(config)
    for name, module in modules.items():
        report = compare_shapes(name, state_shapes(states[name]), state_shapes(module.state_dict()))
        if not report.ok:
            raise ModelError(f"the {name} weights do not match the Geo4D architecture of this config: "
                             f"{report.differences()}",
                             "pass the official Geo4D model.ckpt / vae.ckpt (and --config only for test models)")


def load_geo4d(directory: str | Path, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> Geo4DModules:
    """Verify and load a converted directory.

    Args:
        directory: a converted model directory (model_dir.py); checked against its manifest first.
        device, dtype: where and in which precision the networks go.

    Returns:
        Geo4DModules: the three networks in eval mode without gradients, less the parts inference never runs
        (NOT_RUN), and the context [1, 77 + 16*16, C].
    """
    directory = Path(directory).expanduser()
    meta = verify_model_dir(directory)
    config = meta["config"]
    with torch.device("meta"):
        modules = build_modules(config)
    for name, module in modules.items():
        LAYOUT.load_network(module, directory, name)
        # Before the move, so that they are never copied to the device or the run precision.
        drop_not_run(name, module).to(device=device, dtype=dtype)
    context = load_file(directory / "context.safetensors")["context"].to(device=device, dtype=dtype)
    return Geo4DModules(modules["unet"], modules["vae"], modules["pointmap_vae"], context, config, directory)
