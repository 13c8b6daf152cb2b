"""Fixture (f): denormalisation, validity masks, softplus, depth normalisation, and cameras from a
synthetic Plücker ray map of known cameras (against the official solver and the analytic answer)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .. import postprocess as post
from . import CheckResult, compare, load_tensors

FIXTURE = "postprocess.safetensors"


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    fx = load_tensors(Path(folder) / FIXTURE, device)
    masks_in = fx["masks.in"]
    normed, scale, lower = post.normalize_depth(fx["normalize_depth.in"])
    # [1, 3, T, H, W] -> [T, H, W, 3]
    cams = post.cameras_from_plucker(fx["rays.raymap"][0].permute(1, 2, 3, 0),
                                     fx["rays.crossmap"][0].permute(1, 2, 3, 0))
    return [
        compare("post.denormalize", post.denormalize_pointmap(fx["denorm.in"], 2.0, 2.0), fx["denorm.out_alpha2_beta2"]),
        compare("post.sky_mask_eps0.35", post.sky_mask(masks_in, 1.05, 0.35), fx["masks.sky_eps0.35"], 0.0),
        compare("post.sky_mask_eps0.1", post.sky_mask(masks_in, 1.05, 0.1), fx["masks.sky_eps0.1"], 0.0),
        compare("post.far_away_mask", post.far_away_mask(masks_in, 1.99), fx["masks.far_1.99"], 0.0),
        compare("post.softplus", F.softplus(fx["softplus.in"]), fx["softplus.out"]),
        compare("post.normalize_depth", normed, fx["normalize_depth.out"]),
        compare("post.normalize_depth_scale", scale, fx["normalize_depth.s"]),
        compare("post.normalize_depth_lower", lower, fx["normalize_depth.lower_bound"]),
        compare("post.rays_R", cams.R, fx["rays.cam.R"]),
        compare("post.rays_T", cams.T, fx["rays.cam.T"]),
        compare("post.rays_center", cams.centers, fx["rays.cam.center"]),
        compare("post.rays_c2w", cams.c2w, fx["rays.traj_c2w"]),
        compare("post.rays_c2w_analytic", cams.c2w, fx["rays.expected_c2w"]),
    ]
