"""`python -m engine.bench model`: Geo4D window inference, seconds per frame and peak memory.

Default: the FULL-size architecture (official_config.json, same compute as the released model)
with random weights, a 64-frame clip at 320x512, stride 4, 5 DDIM steps, on CUDA when a GPU is
there, for each runtime and precision asked. Prints, per row, seconds per clip frame for the VAE
encoding, the diffusion (UNet), the decoding (both VAEs) and the whole `Geo4D.predict`, and the
peak GPU memory of each stage (CPU runs print the process's peak RSS instead).

A fixture folder's tiny model for a quick run: `--config ../shared/fixtures/geo4d/tiny_config.json
--device cpu --precisions fp32 --frames 17 --size 32 64`.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from ..models.geo4d.config import OFFICIAL_CONFIG, load_config, unet_params
from ..models.geo4d.model import TEXT_TOKENS, Geo4D, SamplingOptions, TorchBackend
from ..models.geo4d.weights import Geo4DModules, build_modules
from .onnx_unet import randomize_parameters

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TimedBackend:
    """Wraps a backend: wall seconds and peak CUDA memory of each of its three calls."""

    def __init__(self, backend, device: torch.device):
        self.backend = backend
        self.cuda = device.type == "cuda"
        self.seconds: dict[str, float] = defaultdict(float)
        self.peak: dict[str, int] = defaultdict(int)

    def _timed(self, stage: str, call, *args):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        out = call(*args)
        if self.cuda:
            torch.cuda.synchronize()
            self.peak[stage] = max(self.peak[stage], torch.cuda.max_memory_allocated())
        self.seconds[stage] += time.perf_counter() - start
        return out

    def encode(self, video, noise):
        return self._timed("encode", self.backend.encode, video, noise)

    def denoise(self, x, t, context, fs):
        return self._timed("diffusion", self.backend.denoise, x, t, context, fs)

    def decode(self, latent):
        return self._timed("decoding", self.backend.decode, latent)


def random_modules(config: dict, device: torch.device, dtype: torch.dtype, directory: Path) -> Geo4DModules:
    """The networks of `config` with random weights (every path active), in `dtype` on `device`."""
    with torch.device(device):
        modules = build_modules(config)
    for module in modules.values():
        randomize_parameters(module)
        module.to(dtype).eval().requires_grad_(False)
    context_dim = unet_params(config)["context_dim"]
    context = torch.randn(1, TEXT_TOKENS + 16 * 16, context_dim, generator=torch.Generator().manual_seed(0))
    # The ONNX runtime stamps its exported graphs with the weights files' size and time: empty
    # stand-ins, since these weights never were files.
    for name in modules:
        (directory / f"{name}.safetensors").touch()
    return Geo4DModules(modules["unet"], modules["vae"], modules["pointmap_vae"], context.to(device, dtype),
                        config, directory)


def run_one(config: dict, runtime: str, precision: str, device: torch.device, frames: np.ndarray,
            options: SamplingOptions, stride: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        modules = random_modules(config, device, DTYPES[precision], Path(tmp))
        if runtime == "onnx":
            from ..runtime.onnx_backend import OnnxBackend

            backend = OnnxBackend(modules, device, Path(tmp) / "onnx")
        else:
            backend = TorchBackend(modules)
        timed = TimedBackend(backend, device)
        model = Geo4D(timed, config, modules.context, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        windows = model.predict(frames, 24.0, stride, options)
        total = time.perf_counter() - start
        n = len(frames)
        row = {"runtime": runtime, "precision": precision, "windows": windows.num_windows,
               **{f"{stage} s/frame": timed.seconds[stage] / n for stage in ("encode", "diffusion", "decoding")},
               "total s/frame": total / n}
        if device.type == "cuda":
            row.update({f"{stage} peak GB": timed.peak[stage] / 2**30 for stage in ("encode", "diffusion", "decoding")})
        row["process peak RSS GB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        return row


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.bench model", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(OFFICIAL_CONFIG), help="architecture (default: full-size Geo4D)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--runtimes", default="torch,onnx", help="comma-separated: torch, onnx")
    parser.add_argument("--precisions", default=None,
                        help="comma-separated fp16, bf16, fp32 (default: fp16,bf16,fp32 on cuda, fp32 on cpu)")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, nargs=2, default=(320, 512), metavar=("H", "W"))
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--window-batch", type=int, default=1)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    precisions = (args.precisions or ("fp16,bf16,fp32" if device.type == "cuda" else "fp32")).split(",")
    config = load_config(args.config)
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, *args.size, 3), dtype=np.uint8)
    options = SamplingOptions(steps=args.steps, window_batch=args.window_batch)
    print(f"Geo4D window inference: {Path(args.config).name}, {args.frames} frames at {args.size[0]}x{args.size[1]}, "
          f"stride {args.stride}, {args.steps} steps, window batch {args.window_batch}, {device}")
    for runtime in args.runtimes.split(","):
        for precision in precisions:
            if runtime == "onnx" and precision == "bf16":
                continue  # ONNX Runtime runs float32 or float16 graphs
            try:
                row = run_one(config, runtime, precision, device, frames, options, args.stride)
            except Exception as exc:  # one failing combination (memory, provider) must not hide the others
                print(f"{runtime:5} {precision}: failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                continue
            cells = (f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
            print(" | ".join(cells), flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return 0
