"""Loading a converted Geo4D model directory (see convert.py for its layout).

Every file is checked against manifest.json (size and sha256) before use, and every module is
loaded with strict=True, so a missing, truncated or foreign file is named instead of half-loaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ...errors import ModelError
from .config import pointmap_vae_params, unet_params, vae_params

DEFAULT_MODEL_ROOT = Path("~/.cache/parallax/models")
MODEL_DIR_ENV = "PARALLAX_MODEL_DIR"
T = TypeVar("T")
CONVERT_FIX = ("convert the checkpoints again: python -m engine convert geo4d --model-ckpt model.ckpt "
               "--vae-ckpt vae.ckpt --out {dir}  (python -m engine download geo4d says where to get them)")


@dataclass
class Geo4DModules:
    """A loaded Geo4D model.

    Attributes:
        unet: the 3D UNet, in -> [B, 20, T, h, w], out [B, 16, T, h, w].
        vae: the first-stage SD VAE (with adaptors) for frames, rays, moments and disparity.
        pointmap_vae: the fine-tuned point-map VAE with its uncertainty adaptor.
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


def strip_prefix(state: dict[str, T], prefix: str) -> dict[str, T]:
    """The entries of `state` whose key starts with `prefix`, keyed without it (a checkpoint part)."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def default_model_dir(name: str = "geo4d") -> Path:
    """$PARALLAX_MODEL_DIR, else ~/.cache/parallax/models/<name>."""
    env = os.environ.get(MODEL_DIR_ENV)
    return Path(env).expanduser() if env else (DEFAULT_MODEL_ROOT / name).expanduser()


def build_modules(config: dict) -> dict[str, torch.nn.Module]:
    """The three inference networks for `config`, randomly initialised (use a meta-device context
    to build them without memory)."""
    from .unet import UNet3D
    from .vae import AutoencoderKL

    return {
        "unet": UNet3D.from_params(unet_params(config)),
        "vae": AutoencoderKL(vae_params(config)),
        "pointmap_vae": AutoencoderKL(pointmap_vae_params(config)),
    }


def check_state_dicts(config: dict, states: dict[str, dict[str, torch.Tensor]]) -> None:
    """Raise ModelError unless each state dict has exactly the keys and shapes of its module."""
    from .manifest import compare_shapes, state_shapes

    with torch.device("meta"):
        modules = build_modules(config)
    for name, module in modules.items():
        report = compare_shapes(name, state_shapes(states[name]), state_shapes(module.state_dict()))
        if not report.ok:
            raise ModelError(f"the {name} weights do not match the Geo4D architecture of this config: "
                             f"{report.differences()}",
                             "pass the official Geo4D model.ckpt / vae.ckpt (and --config only for test models)")


def verify_model_dir(directory: str | Path) -> dict:
    """Check `directory` against its manifest; return its config.json. ModelError names the bad file."""
    from .convert import MANIFEST_FILES, sha256_file

    directory = Path(directory).expanduser()
    fix = CONVERT_FIX.format(dir=directory)
    if not directory.is_dir():
        raise ModelError(f"the Geo4D model directory {directory} does not exist", fix)
    manifest_path = directory / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except FileNotFoundError:
        raise ModelError(f"{manifest_path} is missing: {directory} is not a converted model directory", fix)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{manifest_path} is corrupt ({exc})", fix) from exc
    for name in MANIFEST_FILES:
        path = directory / name
        if name not in files:
            raise ModelError(f"{manifest_path} does not list {name}", fix)
        if not path.is_file():
            raise ModelError(f"{path} is missing", fix)
        if path.stat().st_size != files[name]["bytes"]:
            raise ModelError(f"{path} has {path.stat().st_size} bytes, the manifest says {files[name]['bytes']} "
                             "(truncated or replaced)", fix)
        if sha256_file(path) != files[name]["sha256"]:
            raise ModelError(f"{path} is corrupt: its sha256 differs from the manifest", fix)
    return json.loads((directory / "config.json").read_text())


def load_geo4d(directory: str | Path, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> Geo4DModules:
    """Verify and load a converted directory; modules in eval mode on `device` in `dtype`."""
    directory = Path(directory).expanduser()
    meta = verify_model_dir(directory)
    config = meta["config"]
    with torch.device("meta"):
        modules = build_modules(config)
    for name, module in modules.items():
        path = directory / f"{name}.safetensors"
        try:
            state = load_file(path)
            module.load_state_dict(state, strict=True, assign=True)
        except (SafetensorError, RuntimeError) as exc:
            raise ModelError(f"{path} does not load into the Geo4D {name} ({str(exc).splitlines()[0]})",
                             CONVERT_FIX.format(dir=directory)) from exc
        module.to(device=device, dtype=dtype).eval().requires_grad_(False)
    context = load_file(directory / "context.safetensors")["context"].to(device=device, dtype=dtype)
    return Geo4DModules(modules["unet"], modules["vae"], modules["pointmap_vae"], context, config, directory)
