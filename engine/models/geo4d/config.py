"""Geo4D configuration as plain data: the official yaml's `params` dicts, nothing more.

Every network module takes the official params of its part (`unet_config.params`,
`first_stage_config.params`, `image_proj_stage_config.params`, the top-level model params) so that
a tiny fixture configuration and the real one go through the same code. `official_config.json` is
the real model's configuration (Geo4D `configs/inference_geo4d.yaml`, as data).
"""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import ModelError
from ..window_model import SizeRule

OFFICIAL_CONFIG = Path(__file__).with_name("official_config.json")
TRAINING_SIZE = (320, 512)  # (H, W) Geo4D was trained at


def load_config(path: str | Path = OFFICIAL_CONFIG) -> dict:
    """Returns {"model": {"target", "params"}, "pointmap_vae_config": {...}} from the official config
    (default) or from a fixture folder's `tiny_config.json` (its `yaml_equivalent`, plus its
    `open_clip_model_config` {"name", "config"} for the tiny CLIP architecture)."""
    path = Path(path)
    fix = "pass a Geo4D config JSON (leave --config out for the official one)"
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read the config {path} ({exc})", fix) from None
    except (ValueError, RecursionError) as exc:
        raise ModelError(f"the config {path} is not valid JSON ({exc})", fix) from None
    config = data
    if isinstance(data, dict) and "yaml_equivalent" in data:
        config = dict(data["yaml_equivalent"]) if isinstance(data["yaml_equivalent"], dict) else {}
    if isinstance(data, dict) and "open_clip_model_config" in data:
        # A fixture's tiny CLIP is not an open_clip built-in; conditioning registers it from here.
        config["open_clip_model_config"] = data["open_clip_model_config"]
    for part in _REQUIRED:
        value = config
        for key in part:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, dict):
            raise ModelError(f"the config {path} lacks {'.'.join(part)} (a JSON object): it is not a Geo4D config",
                             fix)
    return config


# The parts every Geo4D config has (the networks' params).
_REQUIRED = (("model", "params", "unet_config", "params"), ("model", "params", "first_stage_config", "params"),
             ("model", "params", "image_proj_stage_config", "params"), ("pointmap_vae_config", "params"))


def model_params(config: dict) -> dict:
    return config["model"]["params"]


def unet_params(config: dict) -> dict:
    return model_params(config)["unet_config"]["params"]


def size_multiple(config: dict) -> int:
    """Frame sides must be multiples of this: the VAE's 8 times the UNet's downsampling."""
    return 8 * 2 ** (len(unet_params(config)["channel_mult"]) - 1)


def size_rule(config: dict) -> SizeRule:
    """The processing sizes of a Geo4D configuration (sides multiples of its size_multiple: 64 for the official
    one, 32 for the golden fixtures' tiny one)."""
    return SizeRule(size_multiple(config), TRAINING_SIZE, "Geo4D")


def vae_params(config: dict) -> dict:
    """The first-stage (SD) VAE: embed_dim, ddconfig, adaptorconfig."""
    return model_params(config)["first_stage_config"]["params"]


def pointmap_vae_params(config: dict) -> dict:
    return config["pointmap_vae_config"]["params"]


def resampler_params(config: dict) -> dict:
    return model_params(config)["image_proj_stage_config"]["params"]
