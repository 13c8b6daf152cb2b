"""Clip -> window predictions (a geometry model) -> alignment -> reconstruction bundle.

`run_reconstruct(options, progress, cancelled)` is the one entry point, used by the
`reconstruct` command and by the Blender protocol server. The loaded model is cached between
runs (the server keeps its process alive so a second run does not reload 3 GB of weights).

The model is one of engine.models.MODELS, used through the WindowModel seam
(engine/models/window_model.py): this module names no model.

Sizes: the model runs at the processing size its SizeRule fits to the clip (sides multiples of the
model's, close to its training size in area and to the clip in aspect). Its maps are then resized to
the output size: the processing height with the clip's exact aspect ratio, so the bundle's
intrinsics map to the clip's pixels by one scale factor (scene.json metadata.clip_size).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable

from .. import devices
from ..errors import Cancelled, EngineError, InputError
from ..alignment.known import known_camera
from ..clips.lens import Lens, check_distortion, undistort_frames
from ..clips.video import check_frame_range, probe_video, read_video
from ..models import default_model_dir, model_package, size_rule
from ..models.window_model import SamplingOptions, WindowModel
from ..options import ReconstructOptions, check
from ..windows.predictions import maps_bytes
from ..reporting import Log, Plan, Planned, Progress
from ..windows.schedule import check_stride, window_starts

PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def check_memory(options: ReconstructOptions, size: tuple[int, int], device: str, precision: str) -> None:
    """Refuse (EngineError, with the figures) a processing size (H, W) that cannot fit in the memory of
    `device`, before the model loads or the clip is read: an out-of-memory kill gives no message. The model
    package's `memory_floor`, from the model directory's configuration and its files' headers, is a lower bound,
    so nothing that could fit is refused."""
    package = model_package(options.model)
    model_dir = model_dir_of(options)
    variant = {"variant": options.variant} if options.variant else {}  # only a model with variants takes one
    needed, what = package.memory_floor(model_dir, size, PRECISIONS[precision], device, options.runtime, **variant)
    total, where = _memory_of(device)
    if total is not None and needed > total:
        trained_at = size_rule(options.model, model_dir).trained_at
        raise EngineError(f"processing size {size[0]}x{size[1]} needs at least {needed / 1e9:,.1f} GB of {where} "
                          f"memory ({what}); the {where} has {total / 1e9:,.1f} GB",
                          f"pass a smaller --size ({package.LABEL} was trained at {trained_at[0]} {trained_at[1]}), "
                          "or leave --size out for the automatic size")


def _memory_of(device: str) -> tuple[int | None, str]:
    """(bytes of memory, what it is) of a torch device; None where the system does not say."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_properties(device).total_memory, "GPU"
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "computer's"
    except (AttributeError, ValueError, OSError):
        return None, "computer's"


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


def model_dir_of(options: ReconstructOptions) -> Path:
    """The converted model directory: the options', else the default one of the model."""
    return options.model_dir.expanduser() if options.model_dir else default_model_dir(options.model)


def choose_size(options: ReconstructOptions, clip_size: tuple[int, int]) -> tuple[int, int]:
    """The processing size (H, W): the options' where the model takes it, else the one its SizeRule fits to the
    clip. From the model directory's configuration, before the weights load: ModelError for a missing or
    incomplete directory, InputError for a size the model cannot take."""
    rule = size_rule(options.model, model_dir_of(options))
    if options.size is None:
        return rule.fit(clip_size)
    rule.check(options.size)
    return options.size


def load_model(options: ReconstructOptions) -> WindowModel:
    """The model for these options, loaded once and kept for the next run."""
    package = model_package(options.model)
    device, precision = resolve_device(options)
    model_dir = model_dir_of(options)
    key = (options.model, str(model_dir.absolute()), device, precision, options.runtime, options.variant)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()  # one model in memory at a time
        variant = {"variant": options.variant} if options.variant else {}  # only a model with variants takes one
        _MODEL_CACHE[key] = package.load(model_dir, device, PRECISIONS[precision], options.runtime, **variant)
    return _MODEL_CACHE[key]


def check_disk_space(folder: Path, needed: int) -> None:
    """Refuse (EngineError) when the disk holding `folder` has less than `needed` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise EngineError(f"the window predictions need {needed / 1e9:.1f} GB free on the disk of {folder} "
                          f"(while the model runs, then in the bundle); {free / 1e9:.1f} GB are free",
                          "free disk space, write the bundle to a larger disk, or reconstruct a shorter frame range")


def check_options(options: ReconstructOptions) -> None:
    """Refuse unusable settings before anything is loaded (InputError naming the setting)."""
    check(options)  # every field's range, choices and pattern (engine/options.py)
    package = model_package(options.model)
    if options.variant and options.variant not in getattr(package, "VARIANTS", ()):
        raise InputError(f"{package.LABEL} has no variant {options.variant!r}",
                         f"leave --variant out for {package.LABEL}" if not getattr(package, "VARIANTS", ())
                         else f"use --variant {' or --variant '.join(package.VARIANTS)}")
    check_stride(stride_of(options), package.WINDOW_LENGTH)
    if options.distortion_model != "none":
        check_distortion(options.distortion_model, options.distortion, options.align.focal is not None)
    elif options.distortion:
        raise InputError("--distortion is given without --distortion-model", "name the model of the coefficients")


def lens_of(options: ReconstructOptions, clip_size: tuple[int, int]) -> Lens | None:
    """The plate's distorting lens (None: none), its focal and principal point in plate pixels."""
    if options.distortion_model == "none":
        return None
    known = known_camera(options.align, clip_size, clip_size)
    return Lens(options.distortion_model, options.distortion, known.focal or 0.0,
                tuple(float(v) for v in known.principal), tuple(clip_size))


def stride_of(options: ReconstructOptions) -> int:
    """The window stride: the options', else the model's default."""
    return options.stride or model_package(options.model).DEFAULT_STRIDE


def run_reconstruct(options: ReconstructOptions, progress: Progress | None = None,
                    cancelled: Callable[[], bool] | None = None, log: Log | None = None,
                    planned: Planned | None = None) -> Path:
    """Run the whole job: clip -> window predictions -> alignment -> bundle. Nothing is written unless it succeeds.

    Args:
        options: the job (engine/options.py); checked before anything loads.
        progress: hears (stage, fraction): "loading model", "reading video", the model's stages, the alignment's
            "cameras" / "poses" / "depth", "writing bundle".
        cancelled: polled between stages; when it returns True the job raises engine.errors.Cancelled.
        log: hears (level, sentence) the artist should know: where the model runs, windows the alignment distrusted.
        planned: hears the job's Plan (frames, windows, processing size) once the clip is read, before the model runs.

    Returns:
        The bundle folder (docs/formats.md): per clip frame a camera [4, 4], intrinsics [3, 3], a depth EXR
        [H, W] and a point cloud, at the processing height with the clip's aspect.
    """
    import torch

    from ..alignment import align, alignment_notes
    from ..formats.bundle import check_bundle_target, write_bundle
    from ..formats.writable import check_writable

    progress = progress or (lambda stage, fraction: None)
    cancelled = cancelled or (lambda: False)
    log = log or (lambda level, message: None)
    # Everything that can be checked is checked before the model loads (which takes minutes): the options, the
    # output folder, the clip, the frame range, the model directory, the processing size and its memory.
    check_options(options)
    check_writable(options.out)
    inputs = {"clip": options.video, "model directory": options.model_dir}
    out = check_bundle_target(options.out, inputs)
    clip_size, _ = probe_video(options.video)
    start, stop = options.frames
    check_frame_range(options.video, start, stop)
    size = choose_size(options, clip_size)
    device, precision = resolve_device(options)
    check_memory(options, size, device, precision)
    started = time.perf_counter()
    progress("loading model", 0.0)
    model = load_model(options)
    progress("loading model", 1.0)
    log("info", f"{model.label} on {_describe_device(device)}, {precision}, {options.runtime} runtime")
    if device == "cpu":
        log("warning", f"{model.label} is running on the CPU: expect minutes per frame; use a CUDA GPU for whole "
                       "shots")
    progress("reading video", 0.0)
    clip = read_video(options.video, start, stop, size, options.fps)
    lens = lens_of(options, clip_size)
    if lens is not None:  # the model and the solve see what a pinhole camera would
        clip.frames = undistort_frames(clip.frames, lens)
    progress("reading video", 1.0)
    if clip.shortfall():
        log("warning", clip.shortfall())
    if cancelled():
        raise Cancelled()
    sampling = SamplingOptions(steps=options.steps, seed=options.seed, window_batch=options.window_batch)
    map_size = output_size(clip_size, size)
    # The maps spill to nameless files on the bundle's disk, not to a RAM-backed temporary folder, and
    # are then copied into the bundle: both copies must fit.
    spill_dir = next(folder for folder in out.parents if folder.is_dir())
    starts = window_starts(len(clip.frames), stride_of(options), model.window_length)
    check_disk_space(spill_dir, 2 * maps_bytes(len(starts), model.window_length, map_size))
    if planned is not None:
        planned(Plan(len(clip.frames), len(starts), model.window_length, size))
    try:
        windows = model.predict(clip.frames, clip.fps, starts, sampling, progress, cancelled,
                                map_size=map_size, spill_dir=spill_dir)
    except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
        where = "GPU" if device.startswith("cuda") else "computer"
        raise EngineError(f"the {where} ran out of memory running {model.label} at {size[0]}x{size[1]} ({precision}, "
                          f"{options.window_batch} window(s) at a time): {exc}",
                          "use a smaller processing size, window batch 1, fp16 on a GPU, or close other programs "
                          "that use the memory") from exc
    windows.source = str(options.video.absolute())
    if cancelled():
        raise Cancelled()
    model_seconds = time.perf_counter() - started
    # a known camera counts in the plate's pixels; errors and the bundle name the clip's frames
    recon = align(windows, options.align, progress, plate_size=clip_size, frames=clip.frame_indices)
    recon.source_clip = windows.source
    for level, note in alignment_notes(windows, recon, clip_size[1]):
        log(level, note)
    recon.metadata.update({
        "model": options.model, "clip_size": list(clip_size), "processing_size": list(size),
        "stride": stride_of(options), "variant": options.variant, "steps": options.steps, "seed": options.seed,
        "model_seconds": round(model_seconds, 3), "undistorted": lens.to_json() if lens else None,
    })
    if cancelled():
        raise Cancelled()
    progress("writing bundle", 0.0)
    path = write_bundle(recon, out, windows=windows, point_stride=options.point_stride, inputs=inputs,
                        window_storage=options.window_storage,
                        progress=progress)  # the server's progress raises Cancelled on a cancel
    progress("writing bundle", 1.0)
    return path
