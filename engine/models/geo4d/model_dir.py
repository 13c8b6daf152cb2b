"""The converted Geo4D model directory: its layout, its writer (convert.py) and its check (weights.py).

    DIR/
      config.json                 {"model": "geo4d", "format_version", "dtype", "config": official params}
      unet.safetensors            model.diffusion_model.*   (prefix stripped)
      vae.safetensors             first_stage_model.*       (SD VAE with its encoder/decoder adaptors)
      pointmap_vae.safetensors    vae.ckpt model.*          (the fine-tuned point-map VAE)
      context.safetensors         "context": float32[1, 77 + 16*16, C], the constant cross-attention context
      manifest.json               sha256 and size of every file above

Every file is checked against manifest.json (size and sha256) before use, so a missing, truncated
or foreign file is named instead of half-loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ..model_dir import DTYPES, FORMAT_VERSION, ONNX_CACHE, ModelDirLayout, sha256_file

NETWORKS = ("unet", "vae", "pointmap_vae")
WEIGHT_FILES = tuple(f"{name}.safetensors" for name in (*NETWORKS, "context"))
MANIFEST_FILES = ("config.json", *WEIGHT_FILES)
CONVERT_FIX = ("convert the checkpoints again: python -m engine convert geo4d --model-ckpt model.ckpt "
               "--vae-ckpt vae.ckpt --out {dir}  (python -m engine download geo4d says where to get them)")
LAYOUT = ModelDirLayout("geo4d", "Geo4D", WEIGHT_FILES, CONVERT_FIX, extra_files=(f"{ONNX_CACHE}/",))
__all__ = ["CONVERT_FIX", "DTYPES", "FORMAT_VERSION", "LAYOUT", "MANIFEST_FILES", "NETWORKS", "ONNX_CACHE",
           "WEIGHT_FILES", "check_model_target", "model_dir_files", "sha256_file", "verify_model_dir",
           "write_model_dir"]

model_dir_files = LAYOUT.files
check_model_target = LAYOUT.check_target
verify_model_dir = LAYOUT.verify


def write_model_dir(out_dir: Path, networks: dict[str, dict[str, torch.Tensor]], context: torch.Tensor,
                    config: dict, dtype: str, log: Callable[[str], None]) -> None:
    """Write the directory at out_dir (an older one there is replaced only on success).

    networks: {"unet", "vae", "pointmap_vae"} state dicts without prefixes, emptied as they are written
    (stored in `dtype`, one of DTYPES); context: [1, 77 + 16*16, C] (stored in float32)."""
    states = {**networks, "context": {"context": context.detach().float().contiguous().cpu()}}
    networks.clear()
    LAYOUT.write(out_dir, states, {"config": config}, dtype, log, float32=("context",))
