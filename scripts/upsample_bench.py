"""The VAE decoder's Upsample both ways (blocks.Upsample "nearest_conv" and "phase_conv"), taking turns
in one process: its three convolutions alone, then whole point-map decodes (full-size point-map VAE,
random weights, fp32), with wall and CPU seconds and the largest difference between the two ways.

    flock /work/wt/heavy.lock env PYTHONPATH=$PWD python scripts/upsample_bench.py [--frames 8] [--size 64 128]

Run it under the shared lock; timings on a shared machine are meaningful as the ratio of the two ways.
"""

from __future__ import annotations

import argparse
import time

import torch

from engine.bench.onnx_unet import randomize_parameters
from engine.models.geo4d.blocks import UPSAMPLE_MODES, Upsample, set_upsample
from engine.models.geo4d.config import OFFICIAL_CONFIG, load_config, model_params, vae_params
from engine.models.geo4d.vae import decode_frames
from engine.models.geo4d.weights import build_modules


def timed(call) -> tuple[float, float, torch.Tensor]:
    start, cpu_start = time.perf_counter(), time.process_time()
    out = call()
    return time.perf_counter() - start, time.process_time() - cpu_start, out


def take_turns(name: str, call, rounds: int) -> None:
    """`call(mode)` each way `rounds` times after one warm-up call each, alternating; prints the fastest
    of each and the largest absolute difference relative to the largest absolute output."""
    best, outputs = {}, {}
    for mode in UPSAMPLE_MODES:  # warm-up: oneDNN primitives, derived kernels
        call(mode)
    for _ in range(rounds):
        for mode in UPSAMPLE_MODES:
            seconds, cpu, outputs[mode] = timed(lambda: call(mode))
            if mode not in best or seconds < best[mode][0]:
                best[mode] = (seconds, cpu)
    reference, phase = outputs["nearest_conv"], outputs["phase_conv"]
    diff = (phase - reference).abs().max().item()
    scale = reference.abs().max().item()
    (s0, c0), (s1, c1) = best["nearest_conv"], best["phase_conv"]
    print(f"{name:34} nearest_conv {s0:7.3f} s (cpu {c0:7.3f})  phase_conv {s1:7.3f} s (cpu {c1:7.3f})  "
          f"ratio {s1 / s0:5.3f}  max diff {diff:.2e} of {scale:.2f} ({diff / scale:.1e})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=(64, 128))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-decode", action="store_true", help="the single convolutions only")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = load_config(OFFICIAL_CONFIG)
    dd = vae_params(config)["ddconfig"]
    h, w = (s // 8 for s in args.size)
    print(f"{torch.get_num_threads()} threads, {args.frames} frames at {args.size[0]}x{args.size[1]}, fp32, "
          f"channels-last; fastest of {args.rounds} alternating rounds")
    with torch.no_grad():
        # The decoder's upsamplers, low resolution first: ch * ch_mult of the levels above the lowest.
        for level in reversed(range(1, len(dd["ch_mult"]))):
            channels = dd["ch"] * dd["ch_mult"][level]
            factor = 2 ** (len(dd["ch_mult"]) - 1 - level)
            up = Upsample(channels).eval()
            x = torch.randn(args.frames, channels, h * factor, w * factor).contiguous(
                memory_format=torch.channels_last)

            def upsample(mode: str, up=up, x=x) -> torch.Tensor:
                set_upsample(up, mode)
                return up(x)
            take_turns(f"Upsample {list(x.shape)}", upsample, args.rounds)
        if args.no_decode:
            return
        with torch.device("meta"):
            vae = build_modules(config)["pointmap_vae"]
        vae = vae.to_empty(device="cpu")
        randomize_parameters(vae, 124)
        vae.eval().requires_grad_(False)
        scale = float(model_params(config)["scale_factor"])
        latent = torch.randn(1, 4, args.frames, h, w)
        take_turns("point-map decode (with confidence)",
                   lambda mode: decode_frames(vae, latent, scale, args.frames, True, True, mode), args.rounds)


if __name__ == "__main__":
    main()
