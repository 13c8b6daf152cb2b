"""Export the Geo4D UNet to ONNX, for the ONNX Runtime backend (onnx_backend.py).

The graph has dynamic batch, frame count and latent size:
  x         float[b, in_channels, t, h, w]
  timesteps int64[b]
  context   float[b, 77 + 16*t, context_dim]   (the per-frame layout; the traced graph always splits it)
  fs        int64[b]
  -> v      float[b, out_channels, t, h, w]
"float" is the dtype the UNet was exported in (float32, or float16 for the CUDA execution provider).

The TorchScript-based exporter is used (`dynamo=False`): it needs no extra dependency and handles
models over 2 GB (weights go to an external-data file next to the .onnx).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import onnx
import torch

from ..errors import ModelError
from ..models.geo4d.attention import TEXT_TOKENS
from ..models.geo4d.unet import IMAGE_TOKENS_PER_FRAME, UNet3D

INPUT_NAMES = ["x", "timesteps", "context", "fs"]
OUTPUT_NAMES = ["v"]
OPSET = 17
_DYNAMIC_AXES = {
    "x": {0: "batch", 2: "frames", 3: "height", 4: "width"},
    "timesteps": {0: "batch"},
    "context": {0: "batch", 1: "context_tokens"},
    "fs": {0: "batch"},
    "v": {0: "batch", 2: "frames", 3: "height", 4: "width"},
}


def example_inputs(unet: UNet3D, frames: int = 4, latent_size: tuple[int, int] = (8, 8)) -> tuple[torch.Tensor, ...]:
    """Small inputs for tracing, on the UNet's device and in its dtype (values do not matter; the
    sizes are dynamic in the graph)."""
    weight = next(unet.parameters())
    h, w = latent_size
    return (
        torch.zeros(1, unet.in_channels, frames, h, w, dtype=weight.dtype, device=weight.device),
        torch.zeros(1, dtype=torch.int64, device=weight.device),
        torch.zeros(1, TEXT_TOKENS + IMAGE_TOKENS_PER_FRAME * frames, unet.context_dim, dtype=weight.dtype,
                    device=weight.device),
        torch.full((1,), 24, dtype=torch.int64, device=weight.device),
    )


def export_unet(unet: UNet3D, path: str | Path) -> Path:
    """Write `unet` (eval mode; its dtype becomes the graph's, float32 or float16) to `path`.

    The file appears only when the export is complete (written in a temporary folder, then moved),
    so an interrupted export leaves nothing behind."""
    path = Path(path)
    model = unet.eval()
    args = example_inputs(model)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch_dir = tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-")
    except OSError as exc:
        raise ModelError(f"cannot write the ONNX export to {path.parent} ({exc.strerror})",
                         "make that folder writable, or use --runtime torch") from exc
    with scratch_dir as scratch:
        traced = Path(scratch) / "traced" / path.name
        traced.parent.mkdir()
        with torch.no_grad(), warnings.catch_warnings():
            # The context-layout branch is a shape test; tracing keeps the per-frame branch on purpose.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                torch.onnx.export(model, args, str(traced), dynamo=False, opset_version=OPSET,
                                  input_names=INPUT_NAMES, output_names=OUTPUT_NAMES, dynamic_axes=_DYNAMIC_AXES)
            except Exception as exc:
                raise ModelError(f"exporting the UNet to ONNX failed ({type(exc).__name__}: {exc})",
                                 "use --runtime torch, or update torch / onnx") from exc
        # Over 2 GB the exporter writes one external file per tensor; gather them into one file.
        large = len(list(traced.parent.iterdir())) > 1
        final = Path(scratch) / path.name
        onnx.save_model(onnx.load(str(traced)), str(final), save_as_external_data=large,
                        all_tensors_to_one_file=True, location=f"{path.name}.data")
        if large:
            shutil.move(str(final.with_name(f"{path.name}.data")), path.parent / f"{path.name}.data")
        shutil.move(str(final), path)
    return path
