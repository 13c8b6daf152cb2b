"""Fixture (d): the 5-step DDIM schedule and sampling loop, first driven by the recorded model
outputs (the sampler alone), then by our UNet with the recorded conditioning (sampler + UNet)."""

from __future__ import annotations

from pathlib import Path

import torch

from ....sampling.ddim import DDIMPlan, DDIMStep, ddim_sample
from ....sampling.schedule import NoiseSchedule
from ..config import model_params
from . import CheckResult, compare, load_tensors
from .unet_forward import load_tiny_unet

FIXTURE = "ddim_sampling.safetensors"


def check_sampler(fx: dict[str, torch.Tensor], plan: DDIMPlan) -> list[CheckResult]:
    """The plan, and the loop driven by the recorded model outputs, against the fixture's DDIM records."""
    steps = len(plan.timesteps)
    results = [
        compare("ddim.timesteps", plan.timesteps, fx["ddim_timesteps"], 0.0),
        compare("ddim.alphas", plan.alphas, fx["ddim_alphas"]),
        compare("ddim.alphas_prev", plan.alphas_prev, fx["ddim_alphas_prev"]),
        compare("ddim.sqrt_one_minus_alphas", plan.sqrt_one_minus_alphas, fx["ddim_sqrt_one_minus_alphas"]),
        compare("ddim.rescale", plan.rescale, fx["ddim_scale_arr_prev"] / fx["ddim_scale_arr"]),
    ]
    recorded = {int(fx[f"step{i}.t"]): fx[f"step{i}.model_output"] for i in range(steps)}
    seen: list[DDIMStep] = []
    samples = ddim_sample(lambda x, t: recorded[int(t[0])], fx["x_T"], plan, seen.append)
    for i, step in enumerate(seen):
        results.append(compare(f"ddim.step{i}.t", step.t, fx[f"step{i}.t"][0], 0.0))
        for name in ("x_in", "pred_x0", "x_prev"):
            results.append(compare(f"ddim.step{i}.{name}", getattr(step, name), fx[f"step{i}.{name}"]))
    results.append(compare("ddim.samples", samples, fx["samples"]))
    return results


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    fx = load_tensors(Path(folder) / FIXTURE, device)
    plan = DDIMPlan.make(NoiseSchedule.from_model_params(model_params(config)), len(fx["ddim_timesteps"]))
    results = check_sampler(fx, plan)

    unet = load_tiny_unet(folder, config, device)
    seen: list[DDIMStep] = []
    with torch.no_grad():
        samples = ddim_sample(lambda x, t: unet(torch.cat([x, fx["c_concat"]], dim=1), t, fx["c_crossattn"], fx["fs"]),
                              fx["x_T"], plan, seen.append)
    for i, step in enumerate(seen):
        results.append(compare(f"ddim+unet.step{i}.model_output", step.model_output, fx[f"step{i}.model_output"]))
    results.append(compare("ddim+unet.samples", samples, fx["samples"]))
    return results
