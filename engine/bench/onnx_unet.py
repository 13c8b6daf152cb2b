"""`python -m engine.bench onnx-unet`: the Geo4D UNet in torch and in ONNX Runtime, same random
weights and inputs: agreement (max error relative to max(1, |torch|)) and seconds per call.

Default: the FULL-size architecture (official_config.json, 1.44 B parameters) at 320x512
(latent 40x64), 16 frames, float16 + CUDA when a GPU is there, else float32 on the CPU. Export peaks at
the weights plus about a quarter in host memory (7.3 GiB in float32, docs/runtimes.md). A fixture
folder's tiny model: `--config ../shared/fixtures/geo4d/tiny_config.json`.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch

from ..models.geo4d.config import OFFICIAL_CONFIG, load_config, unet_params
from ..models.geo4d.unet import IMAGE_TOKENS_PER_FRAME, UNet3D
from ..models.geo4d.attention import TEXT_TOKENS
from ..models.geo4d.onnx_backend import OnnxUNet
from ..models.geo4d.onnx_export import export_unet


@torch.no_grad()
def randomize_parameters(module: torch.nn.Module, seed: int = 1234) -> None:
    """Random weights with every path active (the official zero-inits would make the output 0):
    norm weights 1 + 0.1 N, other 1-D parameters 0.1 N, matrices and kernels N / sqrt(fan_in)."""
    generator = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        noise = torch.randn(p.shape, generator=generator)
        if p.dim() == 1:
            is_norm_weight = name.endswith("weight")  # every 1-D weight of the Geo4D networks is a norm's
            p.copy_(1 + 0.1 * noise if is_norm_weight else 0.1 * noise)
        else:
            p.copy_(noise / math.sqrt(p.numel() / p.shape[0]))


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timer read after it counts that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int) -> tuple[torch.Tensor, float]:
    out = fn()  # warm-up (kernel selection, ORT arena)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    synchronize(device)
    return out, (time.perf_counter() - start) / repeats


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.bench onnx-unet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(OFFICIAL_CONFIG), help="official_config.json or a tiny_config.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "float16"], default=None,
                        help="default: float16 on cuda, float32 on cpu")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--latent", default="40x64", help="latent HxW (image size / 8)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("float16" if device.type == "cuda" else "float32"))
    h, w = (int(v) for v in args.latent.split("x"))

    with torch.device("meta"):
        unet = UNet3D.from_params(unet_params(load_config(args.config)))
    unet = unet.to_empty(device="cpu")
    randomize_parameters(unet)
    unet = unet.to(device=device, dtype=dtype).eval()
    print(f"UNet {sum(p.numel() for p in unet.parameters()) / 1e6:.1f} M parameters, {dtype}, {device}, "
          f"batch {args.batch} x {args.frames} frames, latent {h}x{w}")

    generator = torch.Generator().manual_seed(0)
    b, t = args.batch, args.frames
    x = torch.randn(b, unet.in_channels, t, h, w, generator=generator).to(device, dtype)
    timesteps = torch.full((b,), 799, dtype=torch.int64, device=device)
    context = torch.randn(b, TEXT_TOKENS + IMAGE_TOKENS_PER_FRAME * t, unet.context_dim,
                          generator=generator).to(device, dtype)
    fs = torch.full((b,), 24, dtype=torch.int64, device=device)

    with torch.no_grad():
        ours, torch_seconds = _timed(lambda: unet(x, timesteps, context, fs), device, args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path = export_unet(unet, Path(folder) / "unet.onnx")
        export_seconds = time.perf_counter() - start
        session = OnnxUNet(path, device)
        theirs, onnx_seconds = _timed(lambda: session(x, timesteps, context, fs), device, args.repeats)
    reference = ours.float()
    error = ((theirs - reference).abs() / reference.abs().clamp_min(1.0)).max().item()
    print(f"torch        {torch_seconds:8.3f} s per call  ({torch_seconds / (b * t):.4f} s per frame)")
    print(f"onnxruntime  {onnx_seconds:8.3f} s per call  ({onnx_seconds / (b * t):.4f} s per frame)"
          f"  export {export_seconds:.1f} s")
    print(f"max error onnxruntime vs torch: {error:.3g} (relative to max(1, |torch|); output std "
          f"{reference.std().item():.3g})")
    return 0
