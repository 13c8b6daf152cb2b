"""`python -m engine.bench model --model geometrycrafter`: GeometryCrafter's window inference timed with random
full-size weights (the real architecture of official_config.json), through the product's WindowModel
(`GeometryCrafterModel.predict`: MoGe prior, conditioning, the UNet, the point-map VAE decoder, per window).

Weights are built on the meta device and filled in place (engine.bench.onnx_unet.randomize_parameters), so they
exist once, in the precision each network runs in (the UNet and CLIP in --precision; the SVD VAE, MoGe and the
point-map VAE in float32, as the loader keeps them). Memory: on CUDA torch.cuda.max_memory_allocated over the
predict call; on the CPU the process's peak resident memory (getrusage), which includes everything before it.
"""

from __future__ import annotations

import resource
import time

import numpy as np
import torch

from ..models.geometrycrafter.config import load_config
from ..models.geometrycrafter.model import GeometryCrafterModel, build
from ..models.geometrycrafter.moge import IMAGENET_MEAN, IMAGENET_STD
from ..models.window_model import SamplingOptions
from ..pipeline.reconstruct import PRECISIONS
from ..windows.schedule import window_starts
from .memory_geometrycrafter import FLOAT32_PARTS, OFFICIAL_CONFIG
from .onnx_unet import randomize_parameters, synchronize

PARTS = ("unet", "vae", "point_map_vae", "image_encoder", "moge")
WARMUP_FRAMES = 8  # --warmup: one call on this many frames, one step, before the timed one


def random_model(config: dict, variant: str, device: torch.device, dtype: torch.dtype, window_length: int,
                 seed: int = 1234) -> GeometryCrafterModel:
    """The WindowModel of `variant` with random weights, each network in the dtype the loader gives it."""
    with torch.device("meta"):
        network = build(config, variant)
    for offset, name in enumerate(PARTS):
        module = getattr(network, name)
        module.to(torch.float32 if name in FLOAT32_PARTS else dtype).to_empty(device=device)
        randomize_parameters(module, seed + offset)
        module.eval().requires_grad_(False)
    network.moge.image_mean.copy_(torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))  # its only buffers
    network.moge.image_std.copy_(torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
    return GeometryCrafterModel(network, config, window_length, device)


def run(args) -> int:
    device = torch.device(args.device)
    config = load_config(OFFICIAL_CONFIG if args.config == "full" else args.config)
    precisions = args.precision or (["fp16"] if device.type == "cuda" else ["bf16"])
    frames = np.random.default_rng(args.seed).integers(0, 256, (args.frames, *args.size, 3), dtype=np.uint8)
    window = args.window or args.frames
    starts = window_starts(args.frames, args.stride or max(1, window - 25), window) if args.frames > window \
        else np.zeros(1, np.int64)
    warmup = min(WARMUP_FRAMES, args.frames)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"GeometryCrafter window inference, {'FULL-size' if args.config == 'full' else args.config} architecture "
          f"with random weights; clip {args.frames} frames at {args.size[0]}x{args.size[1]}, windows of {window} "
          f"({len(starts)}), {args.steps} Euler steps (diff), device {device} ({where}); setup = random weights"
          + (f" and a warm-up call on {warmup} frames" if args.warmup else ""))
    print(f"{'variant':7} {'precision':9} {'setup s':>8} {'predict s':>10} {'s/frame':>8} {'frames/s':>9} "
          f"{'peak GB':>8}", flush=True)
    for variant in args.variant:
        for precision in precisions:
            started = time.perf_counter()
            model = random_model(config, variant, device, getattr(torch, PRECISIONS[precision]), window)
            if args.warmup:  # kernel selection and lazy loading at this frame size, outside the timed call
                model.predict(frames[:warmup], args.fps, np.zeros(1, np.int64),
                              SamplingOptions(steps=1, seed=args.seed))
            setup = time.perf_counter() - started
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            synchronize(device)
            started = time.perf_counter()
            model.predict(frames, args.fps, starts, SamplingOptions(steps=args.steps, seed=args.seed))
            synchronize(device)
            seconds = time.perf_counter() - started
            peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
                    else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
            print(f"{variant:7} {precision:9} {setup:8.1f} {seconds:10.1f} {seconds / args.frames:8.2f} "
                  f"{args.frames / seconds:9.3f} {peak / 2**30:8.2f}", flush=True)
            del model
    return 0
