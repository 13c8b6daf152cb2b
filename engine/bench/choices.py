"""`python -m engine.bench model --choices`: every alternative of the device choices
(engine/models/geo4d/device_choices.py) measured on this device, the chosen one marked.

Rows: frames per VAE encoder and decoder call, channels-last layout on and off, the VAE attention's
q/k/v layout (transposed views, as the VAE had them, against contiguous heads), torch threads, the
decoder's Upsample (nearest x2 then a 3x3 conv, or the same as one 2x2 conv per output phase), and
torch.compile of the VAEs on and off (its compile time is the "1st call" column: the warm-up call,
one call of the measured shape; TORCHINDUCTOR_CACHE_DIR decides whether an earlier run's code is reused),
and the UNet's linear and convolution kernels (stage "denoise": one UNet call on one window of `--frames`
frames at `--size`, the full-size UNet with random weights and its context projected beforehand, as sampling
does; the outputs' largest difference between the kernels is printed under the table).
The full-size VAEs (random weights) encode a clip of `--frames` frames and decode one window's
point-map group (the point-map VAE with its uncertainty head; a window decodes four groups through
the same decoder architecture) at `--size`.

Each variant runs in a fresh process of its own, one at a time, so its peak resident memory is its
own; the variants take turns over `--rounds` rounds (A B C A B C ...) and the fastest round of
each is shown, so that load from other processes on a shared machine falls on all alike.
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace

import torch

from ..models.geo4d.blocks import UPSAMPLE_MODES
from ..models.geo4d.attention import TEXT_TOKENS
from ..models.geo4d.config import OFFICIAL_CONFIG
from ..models.geo4d.device_choices import DeviceChoices, choices_for
from ..models.geo4d.unet import IMAGE_TOKENS_PER_FRAME

GIB = 1024 ** 3


@dataclass(frozen=True)
class Variant:
    stage: str                 # "encode", "decode", "attention" or "denoise"
    choices: DeviceChoices
    attention: str = "contiguous"  # q/k/v layout of the attention rows: "contiguous" or "transposed"


def rows_of(chosen: DeviceChoices) -> list[tuple[str, str, Variant]]:
    """(choice, value, variant) of every row; the chosen value of a choice runs with the others chosen."""
    rows = []
    for chunk in (1, 2, 4, 8):
        rows.append(("encode chunk", str(chunk), Variant("encode", replace(chosen, encode_chunk=chunk))))
    for chunk in (1, 2, 4, 8):
        rows.append(("decode chunk", str(chunk), Variant("decode", replace(chosen, decode_chunk=chunk))))
    for stage in ("encode", "decode"):
        for on in (True, False):
            rows.append((f"{stage} channels_last", "on" if on else "off",
                         Variant(stage, replace(chosen, channels_last=on))))
    for layout in ("contiguous", "transposed"):
        rows.append(("VAE attention q/k/v", layout, Variant("attention", chosen, layout)))
    for threads in (None, 1):
        rows.append(("threads (decode)", "default" if threads is None else str(threads),
                     Variant("decode", replace(chosen, threads=threads))))
    for mode in UPSAMPLE_MODES:
        rows.append(("decode upsample", mode, Variant("decode", replace(chosen, upsample=mode))))
    for stage in ("encode", "decode"):
        for on in (True, False):
            rows.append((f"{stage} torch.compile", "on" if on else "off",
                         Variant(stage, replace(chosen, compile_vae=on))))
    for kernel in ("mkl", "onednn"):
        rows.append(("denoise linears", kernel, Variant("denoise", replace(chosen, linear_kernel=kernel))))
    for kernel in ("torch", "onednn"):
        rows.append(("denoise convolutions", kernel, Variant("denoise", replace(chosen, conv_kernel=kernel))))
    return rows


def is_chosen(choice: str, value: str, chosen: DeviceChoices) -> bool:
    expected = {"encode chunk": str(chosen.encode_chunk), "decode chunk": str(chosen.decode_chunk),
                "encode channels_last": "on" if chosen.channels_last else "off",
                "decode channels_last": "on" if chosen.channels_last else "off",
                "VAE attention q/k/v": "contiguous",
                "threads (decode)": "default" if chosen.threads is None else str(chosen.threads),
                "encode torch.compile": "on" if chosen.compile_vae else "off",
                "decode torch.compile": "on" if chosen.compile_vae else "off",
                "decode upsample": chosen.upsample,
                "denoise linears": chosen.linear_kernel,
                "denoise convolutions": chosen.conv_kernel}
    return expected[choice] == value


def measure(variant: Variant, config_path: str, size: tuple[int, int], frames: int, device: str,
            seed: int = 123) -> dict:
    """Seconds (wall and CPU) of one call after a warm-up call of the same shapes, the warm-up's wall
    seconds (with torch.compile: the compilation), and the process's peak resident memory (so: run it
    in a fresh process). `config_path`: a Geo4D config json."""
    from ..models.geo4d.config import load_config, model_params, vae_params
    from ..models.geo4d.device_choices import apply_threads
    from ..models.geo4d.vae import compile_vae, decode_frames, encode_frames
    from ..models.geo4d.weights import build_modules
    from .onnx_unet import randomize_parameters, synchronize

    apply_threads(variant.choices)
    dev = torch.device(device)
    config = load_config(config_path)
    scale = float(model_params(config)["scale_factor"])
    generator = torch.Generator().manual_seed(seed)
    h, w = size
    choices = variant.choices
    if variant.stage == "attention":
        # The VAE's mid-block attention at this size: one head over the latent's pixels, decode_chunk frames.
        c = int(vae_params(config)["ddconfig"]["ch"]) * int(vae_params(config)["ddconfig"]["ch_mult"][-1])
        tokens = (h // 8) * (w // 8)
        x = torch.randn(choices.decode_chunk, c, tokens, generator=generator).to(dev)
        if variant.attention == "transposed":
            q, k, v = (x.reshape(-1, 1, c, tokens).transpose(2, 3) for _ in range(3))
        else:
            q, k, v = (x.transpose(1, 2).reshape(-1, 1, tokens, c).contiguous() for _ in range(3))

        def call():
            torch.nn.functional.scaled_dot_product_attention(q, k, v)
        warm_up = call
        repeats = max(1, frames // choices.decode_chunk)  # one window's frames
    elif variant.stage == "denoise":
        call, warm_up, outputs = _denoise_call(config, choices, size, frames, dev, generator, seed)
        repeats = 1
    else:
        with torch.device("meta"):
            modules = build_modules(config)
        vaes = {}
        for offset, name in enumerate(("vae", "pointmap_vae")):
            module = modules[name].to_empty(device=dev)
            randomize_parameters(module, seed + offset)
            vaes[name] = module.eval().requires_grad_(False)
            if choices.compile_vae:
                compile_vae(vaes[name])
        del modules
        if variant.stage == "encode":
            video = (torch.rand(1, 3, frames, h, w, generator=generator) * 2 - 1).to(dev)
            noise = torch.randn(frames, 4, h // 8, w // 8, generator=generator).to(dev)

            def encode(frames_used: int):
                encode_frames(vaes["vae"], video[:, :, :frames_used], scale, choices.encode_chunk,
                              noise[:frames_used], choices.channels_last)
            call, warm_up = (lambda: encode(frames)), (lambda: encode(choices.encode_chunk))
        else:
            latent = torch.randn(1, 4, frames, h // 8, w // 8, generator=generator).to(dev)

            def decode(frames_used: int):
                decode_frames(vaes["pointmap_vae"], latent[:, :, :frames_used], scale, choices.decode_chunk, True,
                              choices.channels_last, choices.upsample)
            call, warm_up = (lambda: decode(frames)), (lambda: decode(choices.decode_chunk))
        repeats = 1
    with torch.no_grad():
        first_start = time.perf_counter()
        warm_up()  # kernel selection, oneDNN primitives for these shapes; compilation
        synchronize(dev)
        first_seconds = time.perf_counter() - first_start
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            call()
        synchronize(dev)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev)
    result = {"seconds": seconds, "cpu_seconds": cpu_seconds, "first_seconds": first_seconds, "peak_bytes": peak}
    if variant.stage == "denoise":
        result["output"] = outputs[-1].cpu()
    return result


def _denoise_call(config: dict, choices: DeviceChoices, size: tuple[int, int], frames: int, device: torch.device,
                  generator: torch.Generator, seed: int):
    """(call, warm-up, outputs): one UNet call on one window, the full-size UNet with random weights run as
    TorchBackend runs it (the linear and convolution kernels of `choices`), its context projected once
    beforehand; each call appends its output to `outputs`."""
    from ..models.geo4d.onednn import use_conv_kernel, use_linear_kernel
    from ..models.geo4d.weights import build_modules
    from .onnx_unet import randomize_parameters

    with torch.device("meta"):
        unet = build_modules(config)["unet"]
    unet = unet.to_empty(device=device)
    randomize_parameters(unet, seed)
    unet.eval().requires_grad_(False)
    use_linear_kernel(unet, choices.linear_kernel)
    use_conv_kernel(unet, choices.conv_kernel)
    h, w = size
    x = torch.randn(1, unet.in_channels, frames, h // 8, w // 8, generator=generator).to(device)
    tokens = torch.randn(1, TEXT_TOKENS + IMAGE_TOKENS_PER_FRAME * frames, unet.context_dim, generator=generator)
    timestep, fs = torch.tensor([500], device=device), torch.tensor([24], device=device)
    outputs = []
    with torch.no_grad():
        context = unet.project_context(tokens.to(device), frames)

    def call():
        outputs.append(unet(x, timestep, context, fs))
    return call, call, outputs


def run(args) -> int:
    device = args.device
    chosen = choices_for(device)
    rows = [row for row in rows_of(chosen) if not args.only or any(name in row[0] for name in args.only)]
    if not rows:
        print(f"--only {' '.join(args.only)} names no choice: give words of the choice column, "
              "e.g. --only 'decode torch.compile' threads", file=sys.stderr)
        return 2
    variants = list(dict.fromkeys(v for _, _, v in rows))
    size, frames = tuple(args.size), args.frames
    config_path = str(OFFICIAL_CONFIG if args.config == "full" else args.config)
    print(f"Device choices on {device} ({torch.get_num_threads()} threads by default), "
          f"{'full-size' if args.config == 'full' else args.config} VAEs with random "
          f"weights, {frames} frames at {size[0]}x{size[1]}; chosen now: {asdict(chosen)}")
    print(f"each variant in its own process, one at a time, {args.rounds} rounds taking turns; fastest round shown. "
          "s/f: seconds per frame (encode: the encoder; decode: the point-map VAE's decoder, one of a window's four; "
          "attention: the decoders' mid-block attention), cpu s/f: the process's CPU time per frame. peak: the "
          "process's peak RSS" + (" (GPU: max allocated)" if device.startswith("cuda") else "")
          + "; 1st call s: the warm-up call's wall seconds (with torch.compile: the compilation)")
    best: dict[Variant, dict] = {}
    context = multiprocessing.get_context("spawn")
    for round_index in range(args.rounds):
        for number, variant in enumerate(variants, 1):
            print(f"round {round_index + 1}/{args.rounds}, variant {number}/{len(variants)}", file=sys.stderr,
                  flush=True)
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                result = pool.submit(measure, variant, config_path, size, frames, device, args.seed).result()
            print(f"  {result['seconds'] / frames:.4f} s/f, cpu {result['cpu_seconds'] / frames:.4f} s/f, "
                  f"1st call {result['first_seconds']:.1f} s", file=sys.stderr, flush=True)
            previous = best.get(variant)
            if previous is None or result["seconds"] < previous["seconds"]:
                best[variant] = result
    header = f"{'choice':24} {'value':11} {'s/f':>8} {'cpu s/f':>8} {'peak GiB':>9} {'1st call s':>10}  chosen"
    print(header + "\n" + "-" * len(header))
    for choice, value, variant in rows:
        result = best[variant]
        mark = "*" if is_chosen(choice, value, chosen) else ""
        print(f"{choice:24} {value:11} {result['seconds'] / frames:8.4f} {result['cpu_seconds'] / frames:8.4f} "
              f"{result['peak_bytes'] / GIB:9.2f} {result['first_seconds']:10.1f}  {mark}", flush=True)
    for kernels, plain in (("denoise linears", "mkl"), ("denoise convolutions", "torch")):
        denoised = {value: best[variant]["output"] for choice, value, variant in rows if choice == kernels}
        if plain in denoised and len(denoised) > 1:
            reference = denoised.pop(plain)
            for value, output in denoised.items():
                print(f"{kernels} {value} against {plain}: max |difference| "
                      f"{(output - reference).abs().max():.3g} (outputs up to {reference.abs().max():.3g})")
    return 0
