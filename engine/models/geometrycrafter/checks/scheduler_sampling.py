"""Fixture (f): the Euler tables (training sigmas; Karras sigmas, timesteps and initial noise scale
for several step counts), one 5-step `diff` sampling loop of a single window (each step replayed
from its stored inputs, then the whole loop free-running and decoded), and one `determ` step."""

from __future__ import annotations

from pathlib import Path

import torch

from ....sampling.euler import EulerPlan, euler_step, scale_input, training_sigmas
from ..config import part
from ..denoise import Conditioning, added_time_ids, predict_determ, sample_diff
from ..point_map_vae import decode_point_map
from ..windows import WindowPlan
from . import CheckResult, compare, load_tensors
from .point_map_vae import load_tiny_point_map_vae, mask_mismatch
from .unet_forward import load_tiny_unet

FIXTURE = "scheduler_sampling.safetensors"
TABLE_TOLERANCE = 1e-6  # relative, the README's tolerance for the scheduler tables
FREE_RUNNING = 1e-3     # free-running sampling and its decoded outputs
DECODE_CHUNK = 8        # the official default; the loop's 4 frames make one chunk


def _tables(fx: dict, config: dict) -> list[CheckResult]:
    sigmas = torch.from_numpy(training_sigmas(config))
    results = [
        compare("train.alphas_cumprod", 1.0 / (1.0 + sigmas ** 2), fx["train.alphas_cumprod"], TABLE_TOLERANCE),
        compare("train.sigmas", torch.cat([sigmas.flip(0), torch.zeros(1, dtype=sigmas.dtype)]), fx["train.sigmas"],
                TABLE_TOLERANCE),
    ]
    for steps in sorted({int(key.split(".")[0][5:]) for key in fx if key.startswith("steps")}):
        plan = EulerPlan.from_config(config, steps)
        results += [compare(f"steps{steps}.{name}", value, fx[f"steps{steps}.{name}"], TABLE_TOLERANCE)
                    for name, value in [("sigmas", plan.sigmas), ("timesteps", plan.timesteps),
                                        ("init_noise_sigma", plan.init_noise_sigma.reshape(1))]]
    return results


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    fx = load_tensors(Path(folder) / FIXTURE, device)
    results = _tables({k: v.cpu() for k, v in fx.items() if k.startswith(("train.", "steps"))},
                      part(config, "scheduler"))
    unet = load_tiny_unet(folder, config, "diff", device)
    point_map_vae = load_tiny_point_map_vae(folder, config, device)
    cond = Conditioning(fx["loop.video_latents"][0], fx["loop.prior_latents"][0], fx["loop.video_embeddings"][0],
                        added_time_ids(device))
    results.append(compare("loop.added_time_ids", cond.added_time_ids, fx["loop.added_time_ids"], 0.0))
    steps = sum(1 for key in fx if key.startswith("loop.step") and key.endswith(".t"))
    euler = EulerPlan.from_config(part(config, "scheduler"), steps)

    # Each step from its stored inputs.
    x = fx["loop.noise"] * euler.init_noise_sigma.to(device)
    for i in range(steps):
        step = lambda name: fx[f"loop.step{i}.{name}"]  # noqa: E731
        unet_input = torch.cat([scale_input(x, euler.sigmas[i].to(device)), fx["loop.video_latents"],
                                fx["loop.prior_latents"]], dim=2)
        results += [
            compare(f"loop.step{i}.t", euler.timesteps[i].reshape(1), step("t").cpu(), TABLE_TOLERANCE),
            compare(f"loop.step{i}.unet_input", unet_input, step("unet_input")),
            compare(f"loop.step{i}.noise_pred",
                    unet(step("unet_input"), step("t")[0], cond.embeddings[None], cond.added_time_ids),
                    step("noise_pred")),
            compare(f"loop.step{i}.latents_after",
                    euler_step(x, step("noise_pred"), euler.sigmas[i], euler.sigmas[i + 1]), step("latents_after")),
        ]
        x = step("latents_after")

    # The whole loop free-running, then decoded.
    frames = cond.video_latents.shape[0]
    plan = WindowPlan.make(frames, frames, 0)
    inputs = []
    latents = sample_diff(unet, cond, plan, euler, fx["loop.noise"], lambda k, i, inp, t, v: inputs.append(inp))
    results += [compare(f"loop.free.step{i}.unet_input", inp, fx[f"loop.step{i}.unet_input"], FREE_RUNNING)
                for i, inp in enumerate(inputs)]
    results.append(compare("loop.free.latents", latents, fx[f"loop.step{steps - 1}.latents_after"][0], FREE_RUNNING))
    scaling = part(config, "vae")["scaling_factor"]
    points, valid = decode_point_map(point_map_vae, latents / scaling, DECODE_CHUNK)
    results += [compare("loop.out_point_map", points, fx["loop.out_point_map"], FREE_RUNNING),
                mask_mismatch("loop.out_valid_mask", valid, fx["loop.out_valid_mask"])]

    # determ: its one UNet call, replayed and within the pipeline's loop.
    determ = load_tiny_unet(folder, config, "determ", device)
    results.append(compare("determ.unet_out", determ(fx["determ.unet_input"], float(fx["determ.timestep"][0]),
                                                     cond.embeddings[None], cond.added_time_ids),
                           fx["determ.unet_out"]))
    calls = []
    latents = predict_determ(determ, cond, plan, lambda k, i, inp, t, out: calls.append(inp))
    results.append(compare("determ.unet_input", calls[0], fx["determ.unet_input"]))
    points, valid = decode_point_map(point_map_vae, latents / scaling, DECODE_CHUNK)
    results += [compare("determ.out_point_map", points, fx["determ.out_point_map"], FREE_RUNNING),
                mask_mismatch("determ.out_valid_mask", valid, fx["determ.out_valid_mask"])]
    return results
