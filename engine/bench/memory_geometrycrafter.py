"""The predicted peak CUDA memory of one GeometryCrafter window (`python -m engine.bench memory --model
geometrycrafter`), the same way as Geo4D's (engine/bench/memory.py: the real networks on the meta device, live
tensor storages counted by StorageTracker, attention as CUDA's SDPA kernels run it).

What `GeometryCrafterModel.predict` holds on the device for one window of `frames` frames at H x W, per stage:
- the weights of the networks of one variant (the UNet and CLIP in the run precision, the SVD VAE in float32
  for its force_upcast, MoGe and the point-map VAE in float32, as loaded);
- the window's frames as float32 [T, 3, H, W] (live through every stage: the pipeline keeps them);
- "prior": MoGe's network on one chunk of 8 frames at its working size (~500k pixels; the focal/shift solver
  runs on the CPU, at 64x64);
- "conditioning": CLIP on 8 frames at 224x224, the SVD VAE encoder on 8 frames, the point-map VAE encoder with
  the VAE moments of the disparity pseudo-image (the largest of the three calls);
- "diffusion": one UNet call on the whole window [1, T, C, H/8, W/8] with the per-frame CLIP embeddings
  (diff: 12 input channels; determ: 8), the window's conditioning latents held beside it;
- "decoding": the point-map VAE's temporal decoder on 8 frames' latents.
Not counted, as for Geo4D: cuDNN/cuBLAS workspaces, kernels' internal buffers, the caching allocator's rounding
and fragmentation, the CUDA context, and the small per-frame tensors the pipeline keeps between calls (the
prior's [T, H, W] maps and latents: under 1 % of the frames' bytes at 576x1024).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from ..models.geometrycrafter.config import load_config
from ..models.geometrycrafter.denoise import added_time_ids
from ..models.geometrycrafter.model import DECODE_CHUNK, build_part
from .memory import ATTENTION_OPS, CudaAttention, StagePeaks, StorageTracker

OFFICIAL_CONFIG = Path(__file__).parents[1] / "models" / "geometrycrafter" / "official_config.json"
STAGES = ("prior", "conditioning", "diffusion", "decoding")
FLOAT32_PARTS = ("vae", "point_map_vae", "moge")  # the VAE for its force_upcast; the others as run.py


def meta_networks(config: dict, variant: str, dtype: torch.dtype, device: str = "meta") -> dict[str, torch.nn.Module]:
    """The networks of `variant` on the meta device (or, to check the prediction, random ones on another),
    each in the dtype it runs in."""
    names = (f"unet_{variant}", "vae", "point_map_vae", "image_encoder", "moge")
    with torch.device(device):
        networks = {name.removesuffix(f"_{variant}"): build_part(config, name) for name in names}
    for name, module in networks.items():
        module.to(torch.float32 if name in FLOAT32_PARTS else dtype).eval().requires_grad_(False)
    return networks


def stage_peaks(networks: dict[str, torch.nn.Module], size: tuple[int, int], frames: int,
                cuda_attention: bool = True) -> StagePeaks:
    """Peaks (bytes) of one window's stages, weights and the window's float32 frames included, on the networks'
    device. cuda_attention: attention as CUDA would run it (for meta networks; see memory.CudaAttention)."""
    device = next(networks["unet"].parameters()).device
    tracker = StorageTracker(device)
    for module in networks.values():
        for tensor in (*module.parameters(), *module.buffers()):
            tracker.track(tensor)
    weights = tracker.live
    unet, vae, pmvae = networks["unet"], networks["vae"], networks["point_map_vae"]
    clip, moge = networks["image_encoder"], networks["moge"]
    h, w = size
    lh, lw, t, chunk = h // 8, w // 8, frames, min(DECODE_CHUNK, frames)
    low = next(unet.parameters()).dtype
    def zeros(*shape, dtype=torch.float32):
        return torch.zeros(*shape, dtype=dtype, device=device)

    def conditioning():
        clip(zeros(chunk, 3, clip.image_size, clip.image_size, dtype=low))
        vae.encode(zeros(chunk, 3, h, w))
        pmvae.encode(zeros(chunk, 4, h, w), vae.moments(zeros(chunk, 3, h, w)))

    eh, ew = moge.working_size(h, w)
    calls = {
        "prior": lambda: moge.forward(zeros(chunk, 3, eh, ew)),
        "conditioning": conditioning,
        "diffusion": lambda: unet(zeros(1, t, unet.conv_in.in_channels, lh, lw), 1.6378,
                                  zeros(1, t, clip.visual_projection.out_features, dtype=low), added_time_ids(device)),
        "decoding": lambda: pmvae.decode(zeros(chunk, 4, lh, lw), num_frames=chunk),
    }
    peaks, attention_ops, kernels = {}, {}, {}
    for stage, call in calls.items():
        attention = CudaAttention() if cuda_attention else None
        with tracker, torch.no_grad(), attention or contextlib.nullcontext():
            frames_f32 = zeros(t, 3, h, w)  # the window's frames, live through every stage
            tracker.reset_peak()
            call()
            del frames_f32
        peaks[stage] = tracker.peak
        attention_ops[stage] = sorted(op for op in tracker.ops if any(s in op for s in ATTENTION_OPS))
        kernels[stage] = dict(attention.kernels) if attention else {}
    return StagePeaks(weights, peaks, attention_ops, kernels)


def report(config_arg: str, sizes: list[tuple[int, int]], frames: int, variants: list[str],
           precisions: dict[str, torch.dtype]) -> None:
    """Print one row per variant, size and precision."""
    from ..models.geometrycrafter import size_rule

    config = load_config(OFFICIAL_CONFIG if config_arg == "full" else config_arg)
    for size in sizes:
        size_rule().check(size)
    print(f"Predicted peak CUDA memory (torch.cuda.max_memory_allocated) of one GeometryCrafter window of {frames} "
          f"frames, {'FULL-size' if config_arg == 'full' else config_arg} architecture; GB = 2^30 bytes, weights "
          "and the window's float32 frames included in every stage")
    print("Not counted: cuDNN/cuBLAS workspaces and kernels' internal buffers, the caching allocator's rounding and "
          "fragmentation, the CUDA context, the per-frame prior maps and latents kept between calls.")
    header = (f"{'variant':7} {'size':>9} {'precision':9} {'weights GB':>11} "
              + " ".join(f"{s + ' GB':>15}" for s in STAGES) + f" {'peak GB':>9}")
    print(header + "\n" + "-" * len(header), flush=True)
    for variant in variants:
        for name, dtype in precisions.items():
            networks = meta_networks(config, variant, dtype)
            for size in sizes:
                result = stage_peaks(networks, size, frames)
                print(f"{variant:7} {size[0]:>4}x{size[1]:<4} {name:9} {result.weights / 2**30:11.2f} "
                      + " ".join(f"{result.peaks[s] / 2**30:15.2f}" for s in STAGES)
                      + f" {result.overall / 2**30:9.2f}", flush=True)
