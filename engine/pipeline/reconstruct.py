"""Clip -> window predictions (a geometry model) -> alignment -> reconstruction bundle.

`run_reconstruct(options, progress, cancelled)` is the one entry point, used by the
`reconstruct` command and by the Blender protocol server. The loaded model is cached between
runs (the server keeps its process alive so a second run does not reload 3 GB of weights).

Sizes: the model runs at a processing size whose sides are multiples of its `size_multiple` (64
for Geo4D), close to its training size (320 x 512) in area and to the clip in aspect. Its maps are
then resized to the output size: the processing height with the clip's exact aspect ratio, so the
bundle's intrinsics map to the clip's pixels by one scale factor (scene.json metadata.clip_size).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Callable

from .. import devices
from ..errors import Cancelled, EngineError, InputError
from ..clips.video import probe_video, read_video
from ..windows.predictions import maps_bytes
from ..reporting import Log, Progress
from ..windows.schedule import WINDOW_LENGTH, window_starts

TRAINING_AREA = 320 * 512  # Geo4D's training resolution
PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass
class ReconstructOptions:
    video: Path
    out: Path
    model: str = "geo4d"
    model_dir: Path | None = None    # None: $PARALLAX_MODEL_DIR or ~/.cache/parallax/models/<model>
    stride: int = 4
    steps: int = 5
    device: str | None = None        # auto | cuda | cuda:N | mps | cpu; None: auto (engine.devices)
    precision: str | None = None     # fp32 | fp16 | bf16; None: the device's default (fp16 on GPUs, fp32 on cpu)
    runtime: str = "torch"           # torch | onnx
    frames: tuple[int, int | None] = (0, None)  # [start, stop) in the clip
    size: tuple[int, int] | None = None           # processing (H, W); None: automatic
    seed: int = 123
    window_batch: int = 1
    point_stride: int = 2            # keep every k-th pixel in the bundle's point clouds
    align: dict = field(default_factory=dict)  # alignment options by name
    fps: float | None = None         # frames per second where the clip does not store it: image sequences; default 24

    def __post_init__(self):
        # The protocol server builds options from JSON: null means the default, strings and lists
        # become paths and tuples.
        for f in fields(self):
            if getattr(self, f.name) is not None:
                continue
            if f.default is not MISSING:
                setattr(self, f.name, f.default)
            elif f.default_factory is not MISSING:
                setattr(self, f.name, f.default_factory())
            else:
                raise InputError(f"the reconstruct option `{f.name}` is missing", f"pass {f.name}")
        self.video = Path(self.video)
        self.out = Path(self.out)
        self.model_dir = Path(self.model_dir) if self.model_dir else None
        start, stop = self.frames
        self.frames = (int(start or 0), None if stop is None else int(stop))
        self.size = tuple(int(v) for v in self.size) if self.size else None


def processing_size(clip_size: tuple[int, int], multiple: int, area: int = TRAINING_AREA) -> tuple[int, int]:
    """(H, W), multiples of `multiple`, balancing the clip's aspect and the model's training area
    (log errors of both, equally weighted)."""
    ch, cw = clip_size
    aspect = cw / ch
    best = None
    for h in range(multiple, 4 * int(math.sqrt(area)) + 1, multiple):
        w = max(multiple, int(h * aspect / multiple + 0.5) * multiple)
        cost = abs(math.log(w / h / aspect)) + abs(math.log(h * w / area))
        if best is None or cost < best[0] - 1e-12:
            best = (cost, h, w)
    return best[1], best[2]


def check_size(size: tuple[int, int], multiple: int) -> None:
    """Refuse a processing size (H, W) whose sides are not positive multiples of `multiple` (InputError)."""
    if size[0] % multiple or size[1] % multiple or min(size) < multiple:
        raise InputError(f"processing size {size[0]}x{size[1]} is not a multiple of {multiple}",
                         f"pass --size H W with both multiples of {multiple} (Geo4D trains at 320 512)")


def output_size(clip_size: tuple[int, int], processing: tuple[int, int]) -> tuple[int, int]:
    """The processing height with the clip's aspect ratio."""
    ch, cw = clip_size
    h = processing[0]
    return h, max(2, int(round(h * cw / ch)))


_MODEL_CACHE: dict = {}


def resolve_device(options: ReconstructOptions) -> tuple[str, str]:
    """(device, precision) the model runs with: the options' where this machine runs them (engine.devices)."""
    return devices.choose(options.device, options.precision, devices.machine())


def _describe_device(device: str) -> str:
    import torch

    return f"{device} ({torch.cuda.get_device_name(device)})" if device.startswith("cuda") else device


def load_model(options: ReconstructOptions):
    """The Geo4D model for these options, loaded once and kept for the next run."""
    import torch

    from ..models.geo4d.model import Geo4D
    from ..models.geo4d.model_dir import default_model_dir
    from ..models.geo4d.weights import load_geo4d

    if options.model != "geo4d":
        raise InputError(f"unknown model {options.model!r}", "use --model geo4d")
    device, precision = resolve_device(options)
    model_dir = options.model_dir.expanduser() if options.model_dir else default_model_dir(options.model)
    key = (str(model_dir.absolute()), device, precision, options.runtime)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()  # one model in memory at a time
        modules = load_geo4d(model_dir, device, getattr(torch, PRECISIONS[precision]))
        if options.runtime == "torch":
            model = Geo4D.from_modules(modules, device)
        elif options.runtime == "onnx":
            model = _onnx_model(modules, device)
        else:
            raise InputError(f"unknown runtime {options.runtime!r}", "use --runtime torch or --runtime onnx")
        _MODEL_CACHE[key] = model
    return _MODEL_CACHE[key]


def _onnx_model(modules, device):
    from ..models.geo4d.model import Geo4D

    try:
        from ..runtime.onnx_backend import OnnxBackend
    except ImportError as exc:
        raise EngineError(f"the ONNX Runtime backend is not available here ({exc})",
                          "use --runtime torch, or install the engine's onnx extra (pip install onnxruntime onnx)") from exc
    return Geo4D(OnnxBackend(modules, device), modules.config, modules.context, device)


def check_disk_space(folder: Path, needed: int) -> None:
    """Refuse (EngineError) when the disk holding `folder` has less than `needed` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise EngineError(f"the window predictions need {needed / 1e9:.1f} GB free on the disk of {folder} "
                          f"(while the model runs, then in the bundle); {free / 1e9:.1f} GB are free",
                          "free disk space, write the bundle to a larger disk, or reconstruct a shorter frame range")


def check_options(options: ReconstructOptions) -> None:
    """Refuse unusable settings before anything is loaded (InputError naming the setting)."""
    window_starts(WINDOW_LENGTH + 1, options.stride)  # raises for a stride the windows cannot use
    for name, value, low, high in (("steps", options.steps, 1, 1000), ("window_batch", options.window_batch, 1, 4096),
                                   ("point_stride", options.point_stride, 1, 4096)):
        if not low <= value <= high:
            raise InputError(f"{name} is {value}; it must lie in {low}..{high}",
                             f"pass --{name.replace('_', '-')} with a value in {low}..{high}")
    if options.fps is not None and not 0 < options.fps < 1000:
        raise InputError(f"fps is {options.fps}; it must lie in (0, 1000)", "pass --fps with the clip's frame rate")


def run_reconstruct(options: ReconstructOptions, progress: Progress | None = None,
                    cancelled: Callable[[], bool] | None = None, log: Log | None = None) -> Path:
    """Run the whole job; return the bundle folder. Nothing is written unless it succeeds.
    `log` hears what the artist should know: where the model runs, and windows the alignment distrusted."""
    import torch

    from ..alignment import AlignOptions, align, down_weighted_note
    from ..formats.bundle import check_bundle_target, write_bundle
    from ..models.geo4d.model import SamplingOptions

    progress = progress or (lambda stage, fraction: None)
    cancelled = cancelled or (lambda: False)
    log = log or (lambda level, message: None)
    check_options(options)
    try:
        align_options = AlignOptions(**options.align)
    except TypeError as exc:
        raise InputError(f"unknown alignment option in {sorted(options.align)} ({exc})",
                         "use the fields of engine.alignment.AlignOptions (engine/alignment/align.py)") from None
    out = check_bundle_target(options.out)  # before the model runs, not after
    clip_size, _ = probe_video(options.video)
    started = time.perf_counter()
    progress("loading model", 0.0)
    model = load_model(options)
    progress("loading model", 1.0)
    device, precision = resolve_device(options)
    log("info", f"Geo4D on {_describe_device(device)}, {precision}, {options.runtime} runtime")
    if device == "cpu":
        log("warning", "Geo4D is running on the CPU: expect minutes per frame; use a CUDA GPU for whole shots")
    multiple = model.size_multiple
    if options.size is not None:
        size = options.size
        check_size(size, multiple)
    else:
        size = processing_size(clip_size, multiple)
    start, stop = options.frames
    progress("reading video", 0.0)
    clip = read_video(options.video, start, stop, size, options.fps)
    progress("reading video", 1.0)
    if cancelled():
        raise Cancelled()
    sampling = SamplingOptions(steps=options.steps, seed=options.seed, window_batch=options.window_batch)
    map_size = output_size(clip_size, size)
    # The maps spill to nameless files on the bundle's disk, not to a RAM-backed temporary folder, and
    # are then copied into the bundle: both copies must fit.
    spill_dir = next(folder for folder in out.parents if folder.is_dir())
    num_windows = len(window_starts(len(clip.frames), options.stride))
    check_disk_space(spill_dir, 2 * maps_bytes(num_windows, WINDOW_LENGTH, map_size))
    try:
        windows = model.predict(clip.frames, clip.fps, options.stride, sampling, progress, cancelled,
                                map_size=map_size, spill_dir=spill_dir)
    except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
        where = "GPU" if device.startswith("cuda") else "computer"
        raise EngineError(f"the {where} ran out of memory running Geo4D at {size[0]}x{size[1]} ({precision}, "
                          f"{options.window_batch} window(s) at a time): {exc}",
                          "use a smaller processing size, window batch 1, fp16 on a GPU, or close other programs "
                          "that use the memory") from exc
    windows.source = str(options.video.absolute())
    if cancelled():
        raise Cancelled()
    model_seconds = time.perf_counter() - started
    recon = align(windows, align_options, progress)
    recon.frames = clip.frame_indices
    recon.source_clip = windows.source
    note = down_weighted_note(windows, recon)
    if note:
        log("warning", note)
    recon.metadata.update({
        "model": options.model, "clip_size": list(clip_size), "processing_size": list(size),
        "stride": options.stride, "steps": options.steps, "seed": options.seed,
        "model_seconds": round(model_seconds, 3),
    })
    if cancelled():
        raise Cancelled()
    progress("writing bundle", 0.0)
    path = write_bundle(recon, out, windows=windows, point_stride=options.point_stride)
    progress("writing bundle", 1.0)
    return path
