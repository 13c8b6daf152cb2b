"""Fixture (g): the `determ` pipeline end to end on e2e_diff's clip and windows: every UNet call
replayed from its stored input, then the whole pipeline free-running from the frames."""

from __future__ import annotations

from pathlib import Path

import torch

from ..windows import WindowPlan
from . import CheckResult, load_tensors
from .e2e_diff import FIXTURE as DIFF_FIXTURE, call_options, load_tiny_model, output_results, run_pipeline, \
    unet_call_results

FIXTURE = "e2e_determ.safetensors"


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    fx = load_tensors(Path(folder) / FIXTURE, device)
    clip = load_tensors(Path(folder) / DIFF_FIXTURE, device)  # the video, call parameters and embeddings
    model = load_tiny_model(folder, config, "determ", device)
    options = call_options(clip["call.params"])
    plan = WindowPlan.make(clip["video"].shape[0], options.window_size, options.overlap)
    prediction, calls = run_pipeline(model, clip["video"], options)
    results = unet_call_results(model, fx, lambda k, i, n: f"unet.w{k}.{n}", clip["video_embeddings"], plan, calls)
    return results + output_results("out", prediction, fx["out.point_map"], fx["out.valid_mask"])
