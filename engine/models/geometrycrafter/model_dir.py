"""The converted GeometryCrafter model directory (the shared layout of engine/models/model_dir.py):

    DIR/
      config.json                  {"model": "geometrycrafter", "format_version", "dtype",
                                    "config": {part: official kwargs} (config.py), "window_length": frames per window}
      unet_diff.safetensors        the hub's unet_diff/ weights (diffusers names)
      unet_determ.safetensors      the hub's unet_determ/ weights
      point_map_vae.safetensors    the hub's point_map_vae/ weights
      vae.safetensors              SVD img2vid-xt vae/
      image_encoder.safetensors    SVD img2vid-xt image_encoder/ (CLIP vision with projection)
      moge.safetensors             Ruicheng/moge-vitl model.pt's state dict
      manifest.json                sha256 and size of every file above
      onnx/                        the UNets exported for --runtime onnx on first use (onnx_unet.py), not in
                                   the manifest
"""

from __future__ import annotations

from ..model_dir import ONNX_CACHE, ModelDirLayout

NETWORKS = ("unet_diff", "unet_determ", "point_map_vae", "vae", "image_encoder", "moge")
CONVERT_FIX = ("download and convert the weights again: python -m engine download geometrycrafter, then "
               "python -m engine convert geometrycrafter --out {dir}")
LAYOUT = ModelDirLayout("geometrycrafter", "GeometryCrafter", tuple(f"{n}.safetensors" for n in NETWORKS),
                        CONVERT_FIX, extra_files=(f"{ONNX_CACHE}/",))
