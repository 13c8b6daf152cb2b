"""The predicted peak CUDA memory of one GeometryCrafter window (`python -m engine.bench memory --model
geometrycrafter`), the same way as Geo4D's (engine/bench/memory.py: the real networks on the meta device, live
tensor storages counted by StorageTracker, attention as CUDA's SDPA kernels run it).

What runs is the real code of one window of `GeometryCrafterModel.predict`: the frames converted on the device
(`window_video`) and passed to `pipeline.predict` (Options as the model sets them: no overlap inside a window,
chunks of DECODE_CHUNK frames, 5 Euler steps), on meta tensors. Its stage hook gives the stage boundaries:
- "prior": the frames' conversion, MoGe on chunks of 8 frames at its working size (~500k pixels) and the
  prior at the processing size (MoGe's focal/shift solve runs on the host, on 64x64 copies: not counted);
- "conditioning": CLIP, the SVD VAE encoder and the point-map VAE encoder on chunks of 8 frames, the frames in
  [0, 1] and [-1, 1] and the full-size prior held;
- "diffusion": the UNet on the whole window [1, T, C, H/8, W/8] (diff: 12 input channels, every Euler step;
  determ: 8, one call), the frames freed;
- "decoding": the point-map VAE's temporal decoder on chunks of 8 frames (its result depends on that
  chunking, which stays the official one) and the projection to point maps.
Weights: with offloading (the model's default on a GPU, `GeometryCrafter.home`) only the networks of the
running stage (pipeline.STAGE_NETWORKS) are counted, as the pipeline moves exactly those to the device;
without it, all of them. In the precision they run in: the UNet and CLIP in the run precision, the SVD VAE in
float32 for its force_upcast, MoGe and the point-map VAE in float32, as loaded.
Not counted, as for Geo4D: cuDNN/cuBLAS workspaces, kernels' internal buffers, the caching allocator's rounding
and fragmentation, the CUDA context. Checked against the same code on real CPU tensors with the fixtures' tiny
weights (tests/test_bench_memory_geometrycrafter.py).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from ..models.geometrycrafter.config import load_config, part
from ..models.geometrycrafter.model import DECODE_CHUNK, build_part, window_video
from ..models.geometrycrafter.pipeline import STAGE_NETWORKS, GeometryCrafter, Options, predict
from .memory import ATTENTION_OPS, CudaAttention, StagePeaks, StorageTracker

OFFICIAL_CONFIG = Path(__file__).parents[1] / "models" / "geometrycrafter" / "official_config.json"
STAGES = tuple(STAGE_NETWORKS)
NETWORKS = ("unet", "vae", "point_map_vae", "image_encoder", "moge")
FLOAT32_PARTS = ("vae", "point_map_vae", "moge")  # the VAE for its force_upcast; the others as run.py


def meta_networks(config: dict, variant: str, dtype: torch.dtype, device: str = "meta") -> GeometryCrafter:
    """The networks of `variant` on the meta device (or, to check the prediction, random ones on another),
    each in the dtype it runs in."""
    with torch.device(device):
        parts = {name: build_part(config, f"unet_{variant}" if name == "unet" else name) for name in NETWORKS}
    for name, module in parts.items():
        module.to(torch.float32 if name in FLOAT32_PARTS else dtype).eval().requires_grad_(False)
    return GeometryCrafter(variant, **parts, scheduler=part(config, "scheduler"))


def stage_peaks(network: GeometryCrafter, frames: np.ndarray, cuda_attention: bool = True,
                offload: bool = True) -> StagePeaks:
    """Peaks (bytes) of one window's stages on the networks' device, the weights on the device included.
    frames: the window's uint8 [T, H, W, 3] (on meta only their shape matters).
    cuda_attention: attention as CUDA would run it (for meta networks; see memory.CudaAttention).
    offload: count only the running stage's networks (see the module docstring). StagePeaks.weights: all
    the networks' bytes."""
    device = next(network.unet.parameters()).device
    tracker = StorageTracker(device)
    weights = {}
    for name in NETWORKS:
        before = tracker.live
        module = getattr(network, name)
        for tensor in (*module.parameters(), *module.buffers()):
            tracker.track(tensor)
        weights[name] = tracker.live - before
    total = tracker.live
    resident = set(NETWORKS)
    peaks, attention_ops, kernels = {}, {}, {}
    attention = CudaAttention() if cuda_attention else None
    current = STAGES[0]  # the frames' conversion counts towards the first stage

    def place(names) -> None:
        """Count the weights of `names` only, as offloading leaves only those on the device."""
        nonlocal resident
        tracker.live += sum(weights[n] for n in names) - sum(weights[n] for n in resident)
        tracker.peak = max(tracker.peak, tracker.live)
        resident = set(names)

    def finish(stage: str) -> None:
        peaks[stage] = tracker.peak
        attention_ops[stage] = sorted(op for op in tracker.ops if any(s in op for s in ATTENTION_OPS))
        kernels[stage] = dict(attention.kernels) if attention else {}
        if attention:
            attention.kernels.clear()

    def on_stage(stage: str, names: tuple[str, ...]) -> None:
        nonlocal current
        if stage != current:
            finish(current)
            tracker.reset_peak()
            current = stage
        if offload:
            place(names)

    options = Options(window_size=len(frames), overlap=0, decode_chunk_size=DECODE_CHUNK)
    with tracker, torch.no_grad(), attention or contextlib.nullcontext():
        if offload:
            place(())
        tracker.reset_peak()
        prediction = predict(network, window_video(frames, device), options, on_stage=on_stage)
        finish(current)
        del prediction
    tracker.live += total - sum(weights[n] for n in resident)  # every network counted again, as it lives on
    return StagePeaks(total, peaks, attention_ops, kernels)


def report(config_arg: str, sizes: list[tuple[int, int]], frames: int, variants: list[str],
           precisions: dict[str, torch.dtype]) -> None:
    """Print one row per variant, size and precision."""
    from ..models.geometrycrafter import size_rule

    config = load_config(OFFICIAL_CONFIG if config_arg == "full" else config_arg)
    for size in sizes:
        size_rule().check(size)
    print(f"Predicted peak CUDA memory (torch.cuda.max_memory_allocated) of one GeometryCrafter window of {frames} "
          f"frames, {'FULL-size' if config_arg == 'full' else config_arg} architecture, the real pipeline code on "
          "meta tensors; GB = 2^30 bytes")
    print("Stages with offloading (the model's default on a GPU): each holds its own networks' weights only; "
          "'no offload' holds all of them throughout.")
    print("Not counted: cuDNN/cuBLAS workspaces and kernels' internal buffers, the caching allocator's rounding and "
          "fragmentation, the CUDA context, MoGe's host-side focal/shift solve.")
    header = (f"{'variant':7} {'size':>9} {'precision':9} {'weights GB':>11} "
              + " ".join(f"{s + ' GB':>15}" for s in STAGES) + f" {'peak GB':>9} {'no offload GB':>14}")
    print(header + "\n" + "-" * len(header), flush=True)
    for variant in variants:
        for name, dtype in precisions.items():
            network = meta_networks(config, variant, dtype)
            for size in sizes:
                video = np.zeros((frames, *size, 3), np.uint8)
                result = stage_peaks(network, video)
                resident = stage_peaks(network, video, offload=False)
                print(f"{variant:7} {size[0]:>4}x{size[1]:<4} {name:9} {result.weights / 2**30:11.2f} "
                      + " ".join(f"{result.peaks[s] / 2**30:15.2f}" for s in STAGES)
                      + f" {result.overall / 2**30:9.2f} {resident.overall / 2**30:14.2f}", flush=True)
