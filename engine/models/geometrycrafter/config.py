"""GeometryCrafter configuration as plain data: each part's official constructor kwargs.

A configuration is a dict {part name: kwargs}, the parts being `unet_diff`, `unet_determ`,
`point_map_vae`, `vae`, `image_encoder`, `moge`, `scheduler` and `feature_extractor` (the names of
a fixture folder's `tiny_config.json` -> `modules`). The same code builds the tiny fixture models
and the real ones: every architecture number comes from these kwargs.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import ModelError

PARTS = ("unet_diff", "unet_determ", "point_map_vae", "vae", "image_encoder", "moge", "scheduler",
         "feature_extractor")


def load_config(path: str | Path) -> dict[str, dict]:
    """{part: kwargs} from a fixture folder's `tiny_config.json` (its `modules.<part>.kwargs`) or
    from a plain {part: kwargs} JSON file. A fixture's tiny DINOv2 entry point (not a hub name)
    comes with its sizes, which go into the moge kwargs as `backbone`."""
    data = json.loads(Path(path).read_text())
    if "modules" not in data:
        return data
    config = {name: dict(module["kwargs"]) for name, module in data["modules"].items()}
    entry = data["modules"].get("moge", {}).get("backbone_entry_point")
    if entry is not None:
        config["moge"]["backbone"] = {k: entry[k] for k in ("embed_dim", "depth", "num_heads")}
    return config


def part(config: dict, name: str) -> dict:
    """The kwargs of one part, with a clear error when the configuration lacks it."""
    if name not in config:
        raise ModelError(f"the GeometryCrafter configuration has no '{name}' part",
                         f"use a configuration with all of: {', '.join(PARTS)}")
    return dict(config[name])
