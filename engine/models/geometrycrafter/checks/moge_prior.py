"""Fixture (d): MoGe's `infer` step by step (working size, resizes, DINOv2 tokens, head, focal/shift
solver, re-projection), `produce_priors` with MoGe and on an analytic camera, and the real working size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import part
from ..moge import MoGeModel
from ..priors import Priors, priors_from_points, produce_priors
from . import CheckResult, compare, load_tensors, load_tiny
from .point_map_vae import mask_mismatch

FIXTURE = "moge_prior.safetensors"
WEIGHTS = "tiny_moge.safetensors"
PRIOR_CHUNK = 2  # the fixture's produce_priors chunk size
REAL_AREA_RANGE = (250000, 500000)  # d4: the tiny weights with the real model's trained_area_range


def load_tiny_moge(folder: Path, config: dict, device: torch.device | str = "cpu", **overrides) -> MoGeModel:
    return load_tiny(MoGeModel.from_config({**part(config, "moge"), **overrides}), folder, WEIGHTS, device)


def _prior_results(name: str, priors: Priors, fx: dict) -> list[CheckResult]:
    return [
        compare(f"{name}.norm_factor", priors.norm_factor.reshape(1), fx[f"{name}.norm_factor"]),
        compare(f"{name}.disp_min_max", priors.disparity_range.float(), fx[f"{name}.disp_min_max"]),
        compare(f"{name}.pred_disparity", priors.disparity, fx[f"{name}.pred_disparity"]),
        compare(f"{name}.pred_valid_mask", priors.valid, fx[f"{name}.pred_valid_mask"], tolerance=0.0),
        compare(f"{name}.pred_point_map", priors.point_map, fx[f"{name}.pred_point_map"]),
        compare(f"{name}.pred_intrinsic_map", priors.intrinsics, fx[f"{name}.pred_intrinsic_map_per_frame"]),
    ]


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    fx = load_tensors(Path(folder) / FIXTURE, device)
    moge = load_tiny_moge(folder, config, device)
    image = fx["d1.image"]
    out = moge.infer(image)
    eh, ew = out.working_hw
    resized = F.interpolate(image, (eh, ew), mode="bicubic", align_corners=False, antialias=True)
    normalised = (resized - moge.image_mean) / moge.image_std
    image_14 = F.interpolate(normalised, (eh // 14 * 14, ew // 14 * 14), mode="bilinear", align_corners=False,
                             antialias=True)
    features = moge.backbone.intermediate_layers(image_14, moge.intermediate_layers)
    results = [
        compare("moge.expected_hw", torch.tensor(out.working_hw), fx["d1.expected_hw"], tolerance=0.0),
        compare("moge.image_resized", resized, fx["d1.image_resized"]),
        compare("moge.image_14", image_14, fx["d1.image_14"]),
    ]
    for i, (tokens, cls) in enumerate(features):
        results.append(compare(f"moge.backbone_feat{i}", tokens, fx[f"d1.backbone_feat{i}"]))
        results.append(compare(f"moge.backbone_cls{i}", cls, fx[f"d1.backbone_cls{i}"]))
    results += [
        compare("moge.points_raw", out.points_raw, fx["d1.points_raw"]),
        compare("moge.mask_raw", out.mask_raw, fx["d1.mask_raw"]),
    ]
    for i, trace in enumerate(out.solver):
        expected_evals = fx[f"d1.solver.{i}.evals"].cpu().numpy()
        results += [
            compare(f"moge.solver{i}.uv_lr", trace["uv_lr"], fx[f"d1.solver.{i}.uv_lr"]),
            compare(f"moge.solver{i}.points_lr", trace["points_lr"], fx[f"d1.solver.{i}.points_lr"]),
            CheckResult(f"moge.solver{i}.evaluations {len(trace['evaluated'])} vs {len(expected_evals)}",
                        float(abs(len(trace["evaluated"]) - len(expected_evals))), 0.0),
            compare(f"moge.solver{i}.evaluated_shifts", np.asarray(trace["evaluated"][:len(expected_evals)]),
                    expected_evals),
            compare(f"moge.solver{i}.shift_raw_f64", np.asarray([trace["shift_raw"]]),
                    fx[f"d1.solver.{i}.shift_raw_f64"]),
        ]
    results += [
        compare("moge.focal", out.focal, fx["d1.focal"]),
        compare("moge.shift", out.shift, fx["d1.shift"]),
        compare("moge.intrinsics", out.intrinsics, fx["d1.intrinsics"]),
        compare("moge.depth", out.depth, fx["d1.depth"]),
        compare("moge.points_projected", out.points_projected, fx["d1.points_projected"]),
        compare("moge.out_points", out.points, fx["d1.out_points"]),
        mask_mismatch("moge.out_mask", out.mask, fx["d1.out_mask"]),
    ]

    video = fx["d2.video"]
    d2 = moge.infer(video)
    results += [
        compare("prior.moge_points", d2.points, fx["d2.moge_points"]),
        mask_mismatch("prior.moge_mask", d2.mask, fx["d2.moge_mask"]),
    ]
    results += _prior_results("d2", produce_priors(moge, video, PRIOR_CHUNK), fx)
    results += _prior_results("d3", priors_from_points(fx["d3.points"], fx["d3.mask"].bool()), fx)

    real = load_tiny_moge(folder, config, device, trained_area_range=list(REAL_AREA_RANGE))
    d4 = real.infer(fx["d4.image"])
    results += [
        compare("moge_real_area.expected_hw", torch.tensor(d4.working_hw), fx["d4.expected_hw"], tolerance=0.0),
        compare("moge_real_area.out_points", d4.points, fx["d4.out_points"]),
        mask_mismatch("moge_real_area.out_mask", d4.mask, fx["d4.out_mask"]),
        compare("moge_real_area.intrinsics", d4.intrinsics, fx["d4.intrinsics"]),
    ]
    return results
