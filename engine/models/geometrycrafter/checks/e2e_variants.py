"""Fixture (g): further pipeline calls on e2e_diff's clip: `diff` without projection (per-pixel
focal, same noise), `determ` with a focal per frame, and `determ` on a 60x120 clip processed at
64x128 (the prior and the frames resized in, the point maps resized back out)."""

from __future__ import annotations

from pathlib import Path

import torch

from . import CheckResult, compare, load_tensors
from .e2e_diff import END_TO_END, FIXTURE as DIFF_FIXTURE, call_options, load_tiny_model, output_results, run_pipeline

FIXTURE = "e2e_variants.safetensors"


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    fx = load_tensors(Path(folder) / FIXTURE, device)
    clip = load_tensors(Path(folder) / DIFF_FIXTURE, device)
    params = clip["call.params"]

    diff = load_tiny_model(folder, config, "diff", device)
    prediction, _ = run_pipeline(diff, clip["video"], call_options(params, force_projection=False,
                                                                   force_fixed_focal=False), clip["noise"])
    results = output_results("diff_FF", prediction, fx["diff_FF.point_map"], fx["diff_FF.valid_mask"])

    determ = load_tiny_model(folder, config, "determ", device)
    prediction, _ = run_pipeline(determ, clip["video"], call_options(params, force_fixed_focal=False))
    results += output_results("determ_TF", prediction, fx["determ_TF.point_map"], fx["determ_TF.valid_mask"])

    # Called with the processing size of e2e_diff (64x128) on a smaller clip.
    prediction, calls = run_pipeline(determ, fx["determ_resize.video"], call_options(params))
    results.append(compare("determ_resize.unet_w0_input", calls[(0, 0)], fx["determ_resize.unet_w0_input"], END_TO_END))
    return results + output_results("determ_resize", prediction, fx["determ_resize.point_map"],
                                    fx["determ_resize.valid_mask"])
