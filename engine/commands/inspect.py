"""`python -m engine inspect CLIP [reconstruct's options but --out] [--json]`: what the clip holds and what a
reconstruction of it with those options would need, without the model's weights.

The clip is decoded once with the engine's own readers (engine/clips/facts.py): frames decoded and declared,
rate, size, duration, per-frame timestamps, and the problems they show. The reconstruction's figures come
from the code reconstruct runs: the model's size rule (the processing size), the window schedule, the
weights folder reconstruct would load, and the benchmarks' memory prediction and time figures
(engine/bench/estimate.py; not part of the Blender extension's engine, which then says so).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..clips.facts import ClipFacts, clip_facts
from ..errors import InputError
from ..models import default_model_dir, model_package
from ..options import InspectOptions, add_arguments as add_option_arguments, from_args
from ..pipeline.reconstruct import check_options, stride_of
from ..windows.schedule import window_starts

GB = 1024 ** 3
GPU_PRECISION = "fp16"  # what Auto runs on a GPU (engine/devices.py)
ASPECT_TOLERANCE = 0.02  # processing aspect further than this from the clip's is worth saying


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option_arguments(parser, InspectOptions)


def run(args: argparse.Namespace) -> int:
    options = from_args(InspectOptions, args)
    report = inspect(options)
    print(json.dumps(report, indent=1) if options.json else format_report(report))
    return 0


def inspect(options: InspectOptions) -> dict:
    """The report on options.video and a reconstruction of it with `options` (JSON-ready). Of reconstruct's
    options, the model, its folder and variant, the stride, steps, precision, size, frame range, fps and window
    batch change the report; the bundle's and the alignment's settings do not."""
    check_options(options)  # reconstruct's own checks, before the clip is decoded
    package = model_package(options.model)
    stride = stride_of(options)
    rule = package.size_rule()
    if options.size is not None:
        rule.check(options.size)
    facts = clip_facts(options.video, options.fps)
    size = options.size or rule.fit(facts.size)
    start, stop = options.frames
    frames = len(range(facts.decoded)[start:stop])
    if not frames:
        raise InputError(f"--frames {start}:{'' if stop is None else stop} holds none of the clip's {facts.decoded} "
                         "frames", f"choose a range inside 0:{facts.decoded}")
    starts = window_starts(frames, stride, package.WINDOW_LENGTH)
    problems = facts.problems() + _processing_problems(facts, frames, size, package.LABEL, package.WINDOW_LENGTH)
    model_dir = options.model_dir.expanduser() if options.model_dir else default_model_dir(options.model)
    return {
        "clip": _clip_part(facts),
        "problems": problems,
        "reconstruction": {
            "model": options.model, "label": package.LABEL,
            "processing_size": list(size), "size_rule": f"sides multiples of {rule.multiple}, near "
                                                        f"{rule.trained_at[0]}x{rule.trained_at[1]} in area",
            "size_from": "--size" if options.size else "the model's size rule at the clip's aspect",
            "frames": [start, start + frames], "stride": stride, "steps": options.steps, "windows": len(starts),
            "window_length": package.WINDOW_LENGTH,
            "weights": _weights(package, model_dir),
            "needs": _needs(options, size, starts, frames, package.WINDOW_LENGTH),
        },
    }


def _clip_part(facts: ClipFacts) -> dict:
    steps = facts.intervals_ms()
    part = {"path": str(facts.path), "kind": facts.kind, "frames_decoded": facts.decoded,
            "frames_declared": facts.declared, "fps": facts.fps, "fps_from": facts.fps_source,
            "width": facts.size[1], "height": facts.size[0], "duration_s": round(facts.duration_s, 3)}
    if steps is not None:
        part["frame_interval_ms"] = {"min": round(float(steps.min()), 3), "median": round(float(np.median(steps)), 3),
                                     "max": round(float(steps.max()), 3)}
    if facts.files:
        part["files"] = list(facts.files)
    return part


def _processing_problems(facts: ClipFacts, frames: int, size: tuple[int, int], label: str, window: int) -> list[str]:
    """What the processing size or the number of frames reconstructed mean for the model."""
    found = []
    if frames < window:
        found.append(f"very short clip: {frames} frames, fewer than one {label} window ({window} frames); "
                     f"it runs as one short window, and the model was trained on {window}")
    if frames < 2:
        found.append("a single frame has no camera motion to recover: reconstruct gives its depth and points only")
    h, w = facts.size
    if h < size[0] or w < size[1]:
        found.append(f"the clip ({w}x{h}) is smaller than the processing size {size[1]}x{size[0]}: its frames are "
                     "scaled up, which adds no detail")
    stretch = (size[1] / size[0]) / (w / h)
    if abs(stretch - 1) > ASPECT_TOLERANCE:
        found.append(f"odd aspect ratio {w / h:.2f}: the processing size {size[1]}x{size[0]} (aspect "
                     f"{size[1] / size[0]:.2f}) stretches the frames by {abs(stretch - 1):.0%} (the bundle's maps "
                     "keep the clip's aspect)")
    return found


def _weights(package, model_dir: Path) -> dict:
    """Whether the converted weights reconstruct would load are in model_dir, and how to get them."""
    layout = package.model_dir_layout()
    named = layout.files(model_dir)
    missing = [name for name in layout.manifest_files if not (model_dir / name).is_file()]
    present = named is not None and not missing
    if present:
        state = "present (every file's sha256 is checked when reconstruct loads them)"
    elif named is None:
        state = f"not found: no {layout.label} manifest.json in {model_dir}"
    else:
        state = f"incomplete: {', '.join(missing)} missing in {model_dir}"
    get = (f"python -m engine download {layout.model} --out {model_dir} (downloads and converts them where the "
           "network allows, else prints the manual steps); sources, licences and manual conversion: docs/models.md")
    return {"present": present, "folder": str(model_dir), "state": state, "get": None if present else get}


def _needs(options: InspectOptions, size: tuple[int, int], starts, frames: int, window: int) -> dict:
    """The predicted peak GPU memory and the time from the benchmark figures, or why they are unavailable."""
    try:
        from ..bench.estimate import predict_needs
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("engine.bench"):
            raise
        return {"unavailable": "the benchmarks (engine/bench) are not part of this engine build: run inspect from a "
                               "checkout of the Parallax repository for the memory and time figures"}
    precision = options.precision or GPU_PRECISION
    needs = predict_needs(options.model, size, precision, starts, frames, window, options.steps, options.variant,
                          options.window_batch)
    figure = needs.figure
    return {
        "gpu_memory": {"peak_gb": round(needs.peak_bytes / GB, 2), "weights_gb": round(needs.weights_bytes / GB, 2),
                       "precision": precision, "stages_gb": {k: round(v / GB, 2) for k, v in needs.stages.items()},
                       "from": f"python -m engine.bench memory's prediction (engine/bench/) at {size[0]}x{size[1]}, "
                               f"{_batch(options)}: torch.cuda.max_memory_allocated predicted on the meta device, "
                               "not measured on a GPU"},
        "time": {"seconds": round(needs.seconds, 1), "device": "cpu",
                 "from": f"{figure.command} on {figure.where}: {figure.setting}",
                 "how": figure.caveat,
                 "gpu": "no GPU benchmark figure exists yet (docs/models.md): a GPU is expected to be far faster"},
    }


def _batch(options: InspectOptions) -> str:
    if options.model == "geo4d" and options.window_batch > 1:
        return f"{options.window_batch} windows denoised together"
    return "one window"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_report(report: dict) -> str:
    """The report as lines for a terminal."""
    clip, recon = report["clip"], report["reconstruction"]
    declared = clip["frames_declared"]
    rate_from = {"file": "stored in the file", "--fps": "from --fps", "default": "not stored: the default"}
    lines = [f"Clip {clip['path']} ({clip['kind']})",
             f"  frames:      {clip['frames_decoded']} decoded, "
             + (f"{declared} declared by the container" if declared is not None else
                "the sequence's files" if clip["kind"] == "image sequence" else "the container declares none"),
             f"  rate:        {clip['fps']:g} fps ({rate_from[clip['fps_from']]})"]
    if "frame_interval_ms" in clip:
        steps = clip["frame_interval_ms"]
        lines.append(f"  timestamps:  frame intervals {steps['min']:.2f} to {steps['max']:.2f} ms "
                     f"(median {steps['median']:.2f})")
    if "files" in clip:
        lines.append(f"  files:       {clip['files'][0]} .. {clip['files'][1]}")
    lines += [f"  size:        {clip['width']}x{clip['height']}",
              f"  duration:    {clip['duration_s']:.2f} s",
              "  problems:    " + ("none found" if not report["problems"] else report["problems"][0])]
    lines += [f"               {problem}" for problem in report["problems"][1:]]
    weights, needs = recon["weights"], recon["needs"]
    size = recon["processing_size"]
    lines += [f"{recon['label']} reconstruction ({recon['model']}):",
              f"  processing:  {size[0]}x{size[1]} (H x W; {recon['size_from']}: {recon['size_rule']})",
              f"  windows:     {recon['windows']} of {recon['window_length']} frames over frames "
              f"{recon['frames'][0]}-{recon['frames'][1] - 1}, stride {recon['stride']}, {recon['steps']} "
              + ("step" if recon["steps"] == 1 else "steps"),
              f"  weights:     {weights['state']}"]
    if weights["get"]:
        lines.append(f"               get them: {weights['get']}")
    if "unavailable" in needs:
        lines.append(f"  needs:       {needs['unavailable']}")
        return "\n".join(lines)
    memory, time = needs["gpu_memory"], needs["time"]
    lines += [f"  GPU memory:  {memory['peak_gb']:.2f} GB predicted peak in {memory['precision']} "
              f"({memory['weights_gb']:.2f} GB of it weights), from {memory['from']}",
              f"  time:        about {_duration(time['seconds'])} on the CPU the figure comes from; {time['gpu']}",
              f"               figure: {time['from']}",
              f"               {time['how']}"]
    return "\n".join(lines)
