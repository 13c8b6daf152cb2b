"""`python -m engine.bench onnx-unet`: a model's UNet in torch and in ONNX Runtime, same random
weights and inputs: agreement (max error relative to max(1, |torch|)) and seconds per call.

Default: Geo4D's FULL-size architecture (official_config.json, 1.44 B parameters) at 320x512
(latent 40x64), 16 frames, float16 + CUDA when a GPU is there, else float32 on the CPU. Export peaks at
the weights plus about a quarter in host memory (7.3 GiB in float32, docs/runtimes.md). A fixture
folder's tiny model: `--config ../shared/fixtures/geo4d/tiny_config.json`. `--model geometrycrafter
--variant diff|determ`: GeometryCrafter's spatio-temporal UNet (its official_config.json, 1.52 B parameters;
latent default 40x72, 320x576). As in `reconstruct --runtime onnx`, the torch UNet is dropped after its
export, before ONNX Runtime reads the graph, so the process peak is the larger of the two, not their sum.
"""

from __future__ import annotations

import argparse
import math
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from ..devices import release_freed
from ..models.geo4d.config import OFFICIAL_CONFIG, load_config, unet_params
from ..models.geo4d.unet import IMAGE_TOKENS_PER_FRAME, UNet3D
from ..models.geo4d.attention import TEXT_TOKENS
from ..models.geo4d.onnx_backend import OnnxUNet
from ..models.geo4d.onnx_export import export_unet
from ..models.geometrycrafter import onnx_unet as gc_onnx
from ..models.geometrycrafter.config import load_config as load_gc_config
from ..models.geometrycrafter.denoise import DETERM_TIMESTEP, added_time_ids
from ..models.geometrycrafter.model import build_part
from .memory_geometrycrafter import OFFICIAL_CONFIG as GC_OFFICIAL_CONFIG


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


@dataclass
class UNetCase:
    """One model's UNet (on the meta device) with its inputs: `export` writes its graph, `session` opens
    a graph as a callable taking the same inputs as the UNet."""

    unet: torch.nn.Module
    inputs: tuple
    export: Callable[[torch.nn.Module, Path], Path]
    session: Callable[[Path, torch.device], Callable]


def geo4d_case(config: str, batch: int, frames: int, h: int, w: int) -> UNetCase:
    with torch.device("meta"):
        unet = UNet3D.from_params(unet_params(load_config(config)))
    generator = torch.Generator().manual_seed(0)
    inputs = (torch.randn(batch, unet.in_channels, frames, h, w, generator=generator),
              torch.full((batch,), 799, dtype=torch.int64),
              torch.randn(batch, TEXT_TOKENS + IMAGE_TOKENS_PER_FRAME * frames, unet.context_dim, generator=generator),
              torch.full((batch,), 24, dtype=torch.int64))
    return UNetCase(unet, inputs, export_unet, OnnxUNet)


def geometrycrafter_case(config: str, variant: str, batch: int, frames: int, h: int, w: int) -> UNetCase:
    with torch.device("meta"):
        unet = build_part(load_gc_config(config), f"unet_{variant}")
    generator = torch.Generator().manual_seed(0)
    context_dim = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_k.in_features
    inputs = (torch.randn(batch, frames, unet.conv_in.in_channels, h, w, generator=generator),
              torch.tensor([DETERM_TIMESTEP if variant == "determ" else 1.0]),
              torch.randn(batch, frames, context_dim, generator=generator),
              added_time_ids().expand(batch, -1))
    return UNetCase(unet, inputs, gc_onnx.export_unet, gc_onnx.OnnxSpatioTemporalUNet)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.bench onnx-unet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["geo4d", "geometrycrafter"], default="geo4d")
    parser.add_argument("--variant", choices=["diff", "determ"], default="determ", help="GeometryCrafter's UNet")
    parser.add_argument("--config", default=None,
                        help="default: the model's official_config.json; or a fixture folder's tiny_config.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "float16"], default=None,
                        help="default: float16 on cuda, float32 on cpu")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--latent", default=None, help="latent HxW (image size / 8); default 40x64 (Geo4D), "
                        "40x72 (GeometryCrafter)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("float16" if device.type == "cuda" else "float32"))
    geo4d = args.model == "geo4d"
    h, w = (int(v) for v in (args.latent or ("40x64" if geo4d else "40x72")).split("x"))
    config = args.config or str(OFFICIAL_CONFIG if geo4d else GC_OFFICIAL_CONFIG)
    case = (geo4d_case(config, args.batch, args.frames, h, w) if geo4d
            else geometrycrafter_case(config, args.variant, args.batch, args.frames, h, w))
    unet = case.unet.to_empty(device="cpu")
    randomize_parameters(unet)
    unet = unet.to(device=device, dtype=dtype).eval()
    # Floating inputs in the run's dtype; integer and scalar inputs (timesteps, fps, the GC timestep) as made.
    inputs = tuple(x.to(device, dtype) if x.is_floating_point() and x.dim() > 1 else x.to(device)
                   for x in case.inputs)
    print(f"{args.model} UNet {sum(p.numel() for p in unet.parameters()) / 1e6:.1f} M parameters, {dtype}, {device}, "
          f"batch {args.batch} x {args.frames} frames, latent {h}x{w}")

    b, t = args.batch, args.frames
    with torch.no_grad():
        ours, torch_seconds = _timed(partial(unet, *inputs), device, args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path = case.export(unet, Path(folder) / "unet.onnx")
        export_seconds = time.perf_counter() - start
        session_of = case.session
        del unet, case  # one copy of the weights at a time, as reconstruct --runtime onnx
        release_freed(str(device))
        session = session_of(path, device)
        theirs, onnx_seconds = _timed(partial(session, *inputs), device, args.repeats)
    reference = ours.float()
    error = ((theirs - reference).abs() / reference.abs().clamp_min(1.0)).max().item()
    print(f"torch        {torch_seconds:8.3f} s per call  ({torch_seconds / (b * t):.4f} s per frame)")
    print(f"onnxruntime  {onnx_seconds:8.3f} s per call  ({onnx_seconds / (b * t):.4f} s per frame)"
          f"  export {export_seconds:.1f} s")
    print(f"max error onnxruntime vs torch: {error:.3g} (relative to max(1, |torch|); output std "
          f"{reference.std().item():.3g})")
    print(f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.2f} GiB")
    return 0
