"""Fixture (e): one 16-frame window end to end, from RGB frames to cameras: constant context, VAE
condition latents (with the recorded posterior noise), 5 DDIM steps through the UNet, decoding of
the four latent groups, and the demo's post-processing."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from ....sampling.ddim import DDIMPlan, DDIMStep, ddim_sample
from ....sampling.schedule import NoiseSchedule
from .. import postprocess as post
from ..conditioning import constant_context
from ..config import model_params
from ..vae import encode_frames
from . import CheckResult, compare, load_tensors
from .postprocess import cameras_from_plucker
from .unet_forward import load_tiny_unet
from .vae import load_tiny_vaes

FIXTURE = "e2e_window.safetensors"


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    folder = Path(folder)
    fx = load_tensors(folder / FIXTURE, device)
    weights = load_file(folder / "tiny_weights.safetensors")
    vae, pointmap_vae = load_tiny_vaes(folder, config, device)
    unet = load_tiny_unet(folder, config, device)
    params = model_params(config)
    scale = params["scale_factor"]

    # The context is computed at conversion, on the CPU (checks/conditioning.py), as the engine does.
    context = constant_context(weights, config).to(device)
    z_cond = encode_frames(vae, fx["video"], scale, noise=fx["posterior_noise"])
    results = [compare("e2e.c_crossattn", context, fx["c_crossattn"]), compare("e2e.z_cond", z_cond, fx["z_cond"])]

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return unet(torch.cat([x, z_cond], dim=1), t, context, fx["fs"])

    plan = DDIMPlan.make(NoiseSchedule.from_model_params(params), len(fx["ddim.ddim_timesteps"]))
    steps: list[DDIMStep] = []
    with torch.no_grad():
        samples = ddim_sample(denoise, fx["x_T"], plan, steps.append)
    for i, step in enumerate(steps):
        for name in ("model_output", "pred_x0", "x_prev"):
            results.append(compare(f"e2e.step{i}.{name}", getattr(step, name), fx[f"ddim.step{i}.{name}"]))
    results.append(compare("e2e.samples", samples, fx["samples"]))

    decoded = post.decode_window(samples, vae, pointmap_vae, scale)
    batch = fx["batch_images"][0].permute(1, 2, 3, 0)  # [T, H, W, 11]
    results += [
        compare("e2e.decoded_xyz_uncertainty", torch.cat([decoded.xyz, decoded.raw_uncertainty], -1), batch[..., 0:4]),
        compare("e2e.decoded_ray_dirs", decoded.ray_dirs, batch[..., 4:7]),
        compare("e2e.decoded_ray_moments", decoded.ray_moments, batch[..., 7:10]),
        compare("e2e.decoded_disparity", decoded.disparity, batch[..., 10:11]),
    ]
    geo = post.window_geometry(decoded)
    results += [compare(f"e2e.post.{name}", value, fx[f"post.{name}"]) for name, value in [
        ("pts3d", geo.pts3d), ("conf", geo.conf), ("confidence_final", geo.confidence),
        ("inverse_depthmap", geo.inverse_depth), ("raydir", geo.ray_dirs), ("crossmap", geo.ray_moments),
        ("sky_mask", geo.sky), ("far_away_mask", geo.far_away), ("valid_mask", geo.valid)]]
    cams = cameras_from_plucker(geo.ray_dirs, geo.ray_moments)
    results += [
        compare("e2e.post.cam.R", cams.R, fx["post.cam.R"]),
        compare("e2e.post.cam.T", cams.T, fx["post.cam.T"]),
        compare("e2e.post.cam.center", cams.centers, fx["post.cam.center"]),
        compare("e2e.post.traj_c2w", cams.c2w, fx["post.traj_c2w"]),
    ]
    return results
