"""`python -m engine.bench model`: Geo4D window inference (the real `Geo4D.predict` path: every frame
encoded once, sliding windows at the stride, DDIM, decoding, post-processing) with random weights,
for each runtime and precision: seconds per clip frame and peak memory of encoding, diffusion,
decoding and the whole call, and the max difference from the torch fp32 predictions.

Default: the FULL-size architecture (official_config.json; UNet 1.4 B parameters) on a 64-frame
synthetic clip at 320x512, stride 4, 5 steps, on CUDA when there is a GPU. Each row builds the model
afresh from the same seed (meta device, then random values), so only one copy of the weights is
in memory at a time and every precision gets the same weights up to rounding.

Memory is the peak during each stage, weights included: on CUDA torch.cuda.max_memory_allocated
(torch) or the device memory in use, sampled (ONNX Runtime allocates outside torch); on the CPU the
peak resident set size (Linux VmHWM, reset per stage) above the process size before the model was
built. A fixture folder's tiny model: `--config ../shared/fixtures/geo4d/tiny_config.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..devices import release_freed
from ..errors import EngineError
from ..windows.predictions import WindowPredictions, load_windows, save_windows
from ..models.geo4d.attention import TEXT_TOKENS
from ..models.geo4d.device_choices import DeviceChoices, choices_for
from ..models.geo4d.config import OFFICIAL_CONFIG, load_config, unet_params
from ..models.geo4d.model import Geo4D, SamplingOptions, TorchBackend, size_rule
from ..models.geo4d.unet import IMAGE_TOKENS_PER_FRAME
from ..models.geo4d.weights import Geo4DModules, build_modules, drop_not_run
from ..pipeline.reconstruct import PRECISIONS
from ..windows.schedule import WINDOW_LENGTH, sliding_starts, window_lengths, window_starts
from .onnx_unet import randomize_parameters, synchronize

RUNTIMES = ("torch", "onnx")
STAGES = ("encoding", "diffusion", "decoding")
COMPARED = ("pointmap", "disparity", "ray_dirs", "ray_moments")
GB = 1024 ** 3


@dataclass
class Row:
    runtime: str
    precision: str
    unavailable: str | None = None         # why the row did not run
    setup_s: float = 0.0                   # build + random init (+ ONNX export)
    seconds: dict[str, float] | None = None    # per stage and "total", whole clip
    peak_bytes: dict[str, int | None] | None = None
    predictions: WindowPredictions | None = None
    choices: DeviceChoices | None = None   # torch: None runs the device's chosen settings

    @property
    def label(self) -> str:
        return self.runtime if self.choices is None else f"{self.runtime}/nchw"


class MemoryProbe:
    """Peak memory of the calls between `start()` and `peak()`, in bytes above the baseline taken
    at construction (before the model is built, so weights count). None where it cannot be measured."""

    def __init__(self, device: torch.device, runtime: str):
        if device.type == "cuda":
            self.kind = "torch" if runtime == "torch" else "device"
        else:
            self.kind = "rss" if Path("/proc/self/clear_refs").exists() else None
        self._sampler: threading.Thread | None = None
        self._running = False
        self._sampled = 0
        self.baseline = self._now()

    def _now(self) -> int:
        if self.kind == "torch":
            return torch.cuda.memory_allocated()
        if self.kind == "device":
            free, total = torch.cuda.mem_get_info()
            return total - free
        if self.kind == "rss":
            return _proc_status_bytes("VmRSS")
        return 0

    def start(self) -> None:
        if self.kind == "torch":
            torch.cuda.reset_peak_memory_stats()
        elif self.kind == "rss":
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        elif self.kind == "device":
            self._sampled = self._now()
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._running = True
            self._sampler.start()

    def _sample(self) -> None:
        while self._running:
            self._sampled = max(self._sampled, self._now())
            time.sleep(0.002)

    def peak(self) -> int | None:
        if self.kind == "torch":
            return torch.cuda.max_memory_allocated() - self.baseline
        if self.kind == "rss":
            return _proc_status_bytes("VmHWM") - self.baseline
        if self.kind == "device":
            self._running = False
            self._sampler.join()
            return max(self._sampled, self._now()) - self.baseline
        return None


def _proc_status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


class MeteredBackend:
    """A window-inference backend that times each call (synchronising CUDA around it) and records
    its peak memory, by stage: encode -> encoding, denoise -> diffusion, decode -> decoding."""

    def __init__(self, backend, device: torch.device, probe: MemoryProbe):
        self.backend = backend
        self.device = device
        self.probe = probe
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.peak_bytes: dict[str, int | None] = dict.fromkeys(STAGES)

    def _run(self, stage: str, fn: Callable, *args):
        synchronize(self.device)
        self.probe.start()
        start = time.perf_counter()
        try:
            out = fn(*args)
            synchronize(self.device)
            self.seconds[stage] += time.perf_counter() - start
        finally:
            peak = self.probe.peak()  # also stops the sampling thread when the call fails
        if peak is not None:
            self.peak_bytes[stage] = max(peak, self.peak_bytes[stage] or 0)
        return out

    def encode(self, video, noise):
        return self._run("encoding", self.backend.encode, video, noise)

    def prepare_context(self, context, frames):
        return self._run("diffusion", self.backend.prepare_context, context, frames)

    def denoise(self, x, t, context, fs):
        return self._run("diffusion", self.backend.denoise, x, t, context, fs)

    def decode(self, latent):
        return self._run("decoding", self.backend.decode, latent)


def random_modules(config: dict, device: torch.device, dtype: torch.dtype, directory: Path,
                   seed: int = 1234) -> Geo4DModules:
    """The three networks of `config`, less the parts inference never runs (weights.NOT_RUN), with random
    weights (the same for every device and dtype up to rounding) and a random N(0, 1) context, built on the
    meta device and filled in place, so the weights exist once, in `dtype` on `device`.

    `directory` gets empty stand-ins for the weights files: the ONNX backend stamps its exports with
    them (size and time), so a fresh folder means the run exports its own graphs, and a folder kept
    from an earlier run of the same config, dtype and seed (its stand-ins untouched) reuses them."""
    with torch.device("meta"):
        modules = {name: drop_not_run(name, module) for name, module in build_modules(config).items()}
    for offset, module in enumerate(modules.values()):
        module.to(dtype).to_empty(device=device)
        randomize_parameters(module, seed + offset)
        module.eval().requires_grad_(False)
    tokens = TEXT_TOKENS + IMAGE_TOKENS_PER_FRAME * WINDOW_LENGTH
    context = torch.randn(1, tokens, unet_params(config)["context_dim"], generator=torch.Generator().manual_seed(seed))
    directory.mkdir(parents=True, exist_ok=True)
    for name in modules:
        stand_in = directory / f"{name}.safetensors"
        if not stand_in.is_file():
            stand_in.touch()
    return Geo4DModules(modules["unet"], modules["vae"], modules["pointmap_vae"], context.to(device, dtype),
                        config, directory)


def unavailable_reason(runtime: str, precision: str, device: torch.device) -> str | None:
    """Why this runtime / precision cannot run here (checked before building anything), or None."""
    if runtime == "onnx":
        try:
            import onnxruntime
        except ImportError:
            return "onnxruntime is not installed"
        if precision == "bf16":
            return "the ONNX runtime runs float32 or float16"
        if device.type == "cpu" and precision == "fp16":
            return "ONNX Runtime's CPU provider has no float16 kernels for most of the graph; use fp32"
        if device.type == "cuda" and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "this onnxruntime has no CUDA execution provider (pip install onnxruntime-gpu)"
    return None


def run_row(runtime: str, precision: str, config: dict, frames: np.ndarray, args, device: torch.device,
            scratch: Path, choices: DeviceChoices | None = None) -> Row:
    row = Row(runtime, precision, unavailable_reason(runtime, precision, device), choices=choices)
    if row.unavailable:
        return row
    directory = scratch / f"{row.label.replace('/', '-')}-{precision}"
    if runtime == "onnx" and args.onnx_cache:
        directory = onnx_cache_folder(Path(args.onnx_cache), config, precision, device)
    try:
        _measure(row, config, frames, args, device, directory)
    except torch.cuda.OutOfMemoryError:
        row.unavailable = "out of GPU memory"
    except (EngineError, RuntimeError, NotImplementedError) as exc:
        row.unavailable = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    # The model of this row is gone with _measure's frame; give its memory back before the next.
    release_freed(device)
    return row


def onnx_cache_folder(cache: Path, config: dict, precision: str, device: torch.device) -> Path:
    """The folder under `cache` (--onnx-cache) whose stand-in weights and onnx/ graphs belong to the random
    weights of `config` in `precision` (random_modules' fixed seed), exported on `device`'s type."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    return cache.expanduser() / f"geo4d-{digest}-{precision}-{device.type}"


def _measure(row: Row, config: dict, frames: np.ndarray, args, device: torch.device, directory: Path) -> None:
    probe = MemoryProbe(device, row.runtime)
    started = time.perf_counter()
    modules = random_modules(config, device, getattr(torch, PRECISIONS[row.precision]), directory)
    context = modules.context
    if row.runtime == "torch":
        backend = TorchBackend(modules, row.choices)
        del modules
    else:
        from ..models.geo4d.onnx_backend import OnnxBackend, export_graphs

        graphs = export_graphs(modules)
        # The ONNX backend keeps only its sessions: the torch networks go before it reads the graphs'
        # weights (as models.geo4d.load does), so they are neither counted nor held twice.
        del modules
        release_freed(device)
        backend = OnnxBackend(graphs, config, device)
    release_freed(device)  # the rows' memory is the device's, with no torch blocks cached from the build
    synchronize(device)
    row.setup_s = time.perf_counter() - started
    if args.warmup:
        # Kernel selection, cuDNN autotuning and ONNX Runtime's arena growth happen on first calls.
        Geo4D(backend, config, context, device).predict(
            frames[:WINDOW_LENGTH], args.fps, window_starts(WINDOW_LENGTH, args.stride),
            SamplingOptions(steps=1, seed=args.seed))
    metered = MeteredBackend(backend, device, probe)
    model = Geo4D(metered, config, context, device)
    options = SamplingOptions(steps=args.steps, seed=args.seed, window_batch=args.window_batch)
    synchronize(device)
    start = time.perf_counter()
    row.predictions = model.predict(frames, args.fps, window_starts(len(frames), args.stride), options)
    synchronize(device)
    row.seconds = {**metered.seconds, "total": time.perf_counter() - start}
    peaks = [v for v in metered.peak_bytes.values() if v is not None]
    row.peak_bytes = {**metered.peak_bytes, "total": max(peaks) if peaks else None}


def differences(ours: WindowPredictions, reference: WindowPredictions) -> dict[str, tuple[float, float]]:
    """(max, median) of |ours - reference| / max(1, |reference|) for each continuous map (point map,
    disparity, ray directions and moments; the confidence is left out because its validity mask is a
    threshold that a tiny difference can flip)."""
    out = {}
    for name in COMPARED:
        ref = getattr(reference, name)
        error = np.abs(getattr(ours, name) - ref) / np.maximum(1.0, np.abs(ref))
        out[name] = (float(error.max()), float(np.median(error)))
    return out


def max_difference(by_map: dict[str, tuple[float, float]]) -> tuple[float, str]:
    """The largest difference of `differences`' maps, and the map where it occurs."""
    name = max(by_map, key=lambda m: by_map[m][0])
    return by_map[name][0], name


def stored_reference(folder: Path, frames: np.ndarray) -> Row | None:
    """The torch fp32 row of an earlier run (--reference), its predictions read back; None when the folder
    holds none yet."""
    if not (folder / "windows.json").is_file():
        return None
    predictions = load_windows(folder)
    if (predictions.num_frames, *predictions.image_size) != frames.shape[:3]:
        raise EngineError(f"the reference predictions in {folder} are of {predictions.num_frames} frames at "
                          f"{predictions.image_size[0]}x{predictions.image_size[1]}, not this clip's",
                          "give --reference a folder of its own for each clip size")
    return Row("torch", "fp32", predictions=predictions)


def table_header() -> str:
    stages = (*STAGES, "total")
    header = (f"{'runtime':11} {'precision':9} "
              + " ".join(f"{s + ' s/f':>13}" for s in stages) + "  "
              + " ".join(f"{s + ' GB':>12}" for s in stages)
              + f"  {'setup s':>8}  max diff vs torch fp32")
    return header + "\n" + "-" * len(header)


def format_row(row: Row, reference: Row | None, num_frames: int) -> str:
    """One line of the table; `reference` is the torch fp32 row (None when it did not run)."""
    head = f"{row.label:11} {row.precision:9} "
    if row.unavailable:
        return head + f"n/a ({row.unavailable})"
    stages = (*STAGES, "total")
    times = " ".join(f"{row.seconds[s] / num_frames:13.4f}" for s in stages)
    memory = " ".join(f"{'n/a':>12}" if row.peak_bytes[s] is None else f"{row.peak_bytes[s] / GB:12.2f}"
                      for s in stages)
    if reference is None:
        diff = "n/a (no torch fp32 row)"
    elif row is reference:
        diff = "reference"
    else:
        by_map = differences(row.predictions, reference.predictions)
        value, name = max_difference(by_map)
        diff = (f"{value:.3g} ({name})\n{'':21}difference by map, max / median: "
                + ", ".join(f"{m} {a:.2g} / {b:.2g}" for m, (a, b) in by_map.items()))
    return head + times + "  " + memory + f"  {row.setup_s:8.1f}  {diff}"


def synthetic_clip(num_frames: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """uint8 [N, H, W, 3] noise frames: the compute does not depend on the content."""
    return np.random.default_rng(seed).integers(0, 256, (num_frames, *size, 3), dtype=np.uint8)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.bench model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="full", help="full (the real architecture) or a tiny_config.json")
    parser.add_argument("--size", type=int, nargs=2, default=(320, 512), metavar=("H", "W"))
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--window-batch", type=int, default=1, help="windows denoised together")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--runtime", nargs="+", choices=RUNTIMES, default=list(RUNTIMES))
    parser.add_argument("--precision", nargs="+", choices=list(PRECISIONS), default=None,
                        help="default: fp32 fp16 bf16 on cuda; fp32 on cpu (torch's CPU fp16 kernels are very slow). "
                             "fp16 and bf16 change the numbers: their rows show their difference to torch fp32")
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True,
                        help="run one window (1 step) before measuring (kernel selection, ONNX Runtime arena); "
                             "GeometryCrafter: one short call at the same size")
    parser.add_argument("--onnx-cache", default=None, metavar="DIR",
                        help="keep the ONNX rows' exported graphs in DIR and reuse them in later runs (same config and "
                             "precision), so a run times ONNX Runtime without exporting first; default: export in a "
                             "temporary folder every run")
    parser.add_argument("--reference", default=None, metavar="DIR",
                        help="the torch fp32 predictions across runs: a run with that row writes them to DIR (when "
                             "DIR holds none), a run without it compares its rows with them (runtimes timed in "
                             "separate processes)")
    parser.add_argument("--model", choices=["geo4d", "geometrycrafter"], default="geo4d")
    parser.add_argument("--variant", nargs="+", choices=["diff", "determ"], default=["diff", "determ"],
                        help="GeometryCrafter's variants")
    parser.add_argument("--window", type=int, default=None,
                        help="GeometryCrafter: frames per window (default 110, or the clip when shorter)")
    parser.add_argument("--also-nchw", action="store_true",
                        help="add a torch fp32 row with the VAEs in the contiguous (NCHW) layout, as before "
                             "channels-last was chosen for the CPU")
    parser.add_argument("--official-window", default=None, metavar="C,E,D,V",
                        help="the official code's seconds per window frame by stage (conditioning, encoding, "
                             "denoising, decoding), measured at the same size and steps: prints its cost per clip "
                             "frame for this clip, computed (it re-conditions and re-encodes every window)")
    parser.add_argument("--choices", action="store_true",
                        help="measure the device choices (VAE chunks, layout, attention, threads) instead; "
                             "default size then 64x128, 16 frames")
    parser.add_argument("--rounds", type=int, default=2, help="--choices: rounds the variants take turns over")
    parser.add_argument("--only", nargs="+", default=None, metavar="CHOICE",
                        help="--choices: only the rows whose choice contains one of these, e.g. 'decode torch.compile'")
    args = parser.parse_args(argv)
    if args.choices:
        from .choices import run

        args.size = args.size if "--size" in argv else (64, 128)
        args.frames = args.frames if "--frames" in argv else WINDOW_LENGTH
        return run(args)
    if args.model == "geometrycrafter":
        from .model_geometrycrafter import run

        args.stride = None if "--stride" not in argv else args.stride
        args.window = args.window or min(110, args.frames)
        return run(args)

    device = torch.device(args.device)
    precisions = args.precision or (list(PRECISIONS) if device.type == "cuda" else ["fp32"])
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was asked for but PyTorch sees no CUDA GPU: use --device cpu")
    config = load_config(OFFICIAL_CONFIG if args.config == "full" else args.config)
    with torch.device("meta"):
        counts = {name: sum(p.numel() for p in drop_not_run(name, m).parameters())
                  for name, m in build_modules(config).items()}
    try:
        size_rule(config).check(args.size)
        num_windows = len(window_starts(args.frames, args.stride))
    except EngineError as exc:
        parser.error(str(exc))
    frames = synthetic_clip(args.frames, tuple(args.size), args.seed)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"Geo4D window inference, {'FULL-size' if args.config == 'full' else args.config} architecture with "
          f"random weights (UNet {counts['unet'] / 1e6:.1f} M, VAEs {counts['vae'] / 1e6:.1f} M + "
          f"{counts['pointmap_vae'] / 1e6:.1f} M parameters)")
    print(f"clip {args.frames} frames at {args.size[0]}x{args.size[1]}, stride {args.stride} -> {num_windows} windows, "
          f"{args.steps} DDIM steps, window batch {args.window_batch}, warm-up {'on' if args.warmup else 'off'}, "
          f"device {device} ({where})")
    print("s/f: seconds per clip frame (total = the whole predict call). GB: peak during the stage, weights "
          + ("included (torch: max_memory_allocated; onnx: device memory in use, sampled)" if device.type == "cuda"
             else "included (peak RSS above the process before the model was built)"))

    # Each row is printed as soon as it is measured, so a run stopped at a time limit keeps its
    # finished rows; torch fp32, the reference of the last column, runs first.
    print(table_header(), flush=True)
    reference = stored_reference(Path(args.reference), frames) if args.reference else None
    with tempfile.TemporaryDirectory(prefix="parallax-bench-") as scratch:
        for runtime in sorted(set(args.runtime), key=RUNTIMES.index):
            for precision in sorted(precisions, key=list(PRECISIONS).index):
                row = run_row(runtime, precision, config, frames, args, device, Path(scratch))
                if (runtime, precision) == ("torch", "fp32") and row.predictions is not None:
                    reference = row
                    if args.reference and not (Path(args.reference) / "windows.json").is_file():
                        save_windows(row.predictions, args.reference)
                print(format_row(row, reference, args.frames), flush=True)
                if (runtime, precision) == ("torch", "fp32") and args.also_nchw:
                    nchw = replace(choices_for(device), channels_last=False)
                    row = run_row(runtime, precision, config, frames, args, device, Path(scratch), nchw)
                    print(format_row(row, reference, args.frames), flush=True)
    window_frames = int(window_lengths(window_starts(args.frames, args.stride), args.frames).sum())
    print(f"{num_windows} windows hold {window_frames} window frames: diffusion and decoding per window frame are "
          f"the s/f above x {args.frames / window_frames:.4f}")
    if args.official_window:
        print(official_clip_cost(args.official_window, args.frames, args.stride))
    return 0


def official_window_count(num_frames: int, stride: int) -> int:
    """Windows the official demo runs over a clip: ours, plus its last window a second time when
    (num_frames - 16) % stride == 0 (engine/windows/schedule.py; fixture windows.json)."""
    return len(sliding_starts(num_frames, stride)) + int(max(num_frames - WINDOW_LENGTH, 0) % stride == 0)


def official_clip_cost(per_window_frame: str, num_frames: int, stride: int) -> str:
    """The official code's seconds per clip frame by stage, from its seconds per window frame: it
    conditions, encodes, denoises and decodes every window on its own."""
    try:
        stages = [float(v) for v in per_window_frame.split(",")]
    except ValueError:
        stages = []
    if len(stages) != 4:
        raise EngineError(f"--official-window {per_window_frame!r} is not four numbers",
                          "give conditioning,encoding,denoising,decoding seconds per window frame, e.g. "
                          "0.179,0.175,1.430,1.582")
    count = official_window_count(num_frames, stride)
    factor = count * min(num_frames, WINDOW_LENGTH) / num_frames
    per_clip = [v * factor for v in stages]
    return (f"official, computed: {count} windows x {min(num_frames, WINDOW_LENGTH)} frames over {num_frames} clip "
            f"frames = x{factor:.3f} its per-window-frame figures: conditioning / encoding / diffusion / decoding "
            + " / ".join(f"{v:.3f}" for v in per_clip) + f", total {sum(per_clip):.3f} s per clip frame")
