"""Where each network's tensors sit in the official Geo4D checkpoints, and loading one such part.

model.ckpt's state_dict holds the UNet, the first-stage VAE, the Resampler and the two CLIP towers
under the prefixes below; vae.ckpt's holds the fine-tuned point-map VAE under "model.". The
converted model directory (model_dir.py) stores each network without its prefix.
"""

from __future__ import annotations

from typing import TypeVar

from torch import nn

UNET_PREFIX = "model.diffusion_model."
FIRST_STAGE_PREFIX = "first_stage_model."
POINTMAP_VAE_PREFIX = "model."  # in vae.ckpt
RESAMPLER_PREFIX = "image_proj_model."
TEXT_PREFIX = "cond_stage_model.model."
IMAGE_PREFIX = "embedder.model."
# Only used to compute the constant context at conversion.
CONDITIONING_PREFIXES = ("cond_stage_model.", "embedder.", RESAMPLER_PREFIX)

T = TypeVar("T")
M = TypeVar("M", bound=nn.Module)


def strip_prefix(state: dict[str, T], prefix: str) -> dict[str, T]:
    """The entries of `state` whose key starts with `prefix`, keyed without it (a checkpoint part)."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_part(module: M, state: dict, prefix: str = "") -> M:
    """`module` holding the tensors of `state` under `prefix` (prefix stripped), in eval mode without gradients.

    The load is strict (RuntimeError names every missing, unexpected or mis-shaped key). A module built on
    the meta device (no memory until loaded) takes the tensors themselves, in their dtype; any other module
    copies them into its own parameters (whose memory layout, and so the kernels' summation order, stays
    the module's)."""
    on_meta = any(p.is_meta for p in module.parameters())
    module.load_state_dict(strip_prefix(state, prefix), strict=True, assign=on_meta)
    return module.eval().requires_grad_(False)
