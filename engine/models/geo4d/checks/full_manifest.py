"""The full-size state-dict manifest: every tensor of the real model.ckpt and vae.ckpt against our
modules built at the real size on the meta device (100% of keys, same shapes, no extras)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ....sampling.schedule import NoiseSchedule
from .. import conditioning as cond
from ..config import load_config, model_params, pointmap_vae_params, vae_params
from ..manifest import (ManifestReport, check_manifest_part, compare_shapes, full_size_parts, manifest_entries,
                        state_shapes)
from ..checkpoint_keys import FIRST_STAGE_PREFIX
from ..vae import AutoencoderKL
from . import CheckResult

FIXTURE = "full_manifest.json"
DEVICE = None  # shapes of modules built on the meta device, no values

# model.ckpt's top-level tensors: the training schedule buffers (the sampler recomputes them).
SCHEDULE_BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                    "posterior_mean_coef1", "posterior_mean_coef2")


def _result(report: ManifestReport) -> CheckResult:
    errors = len(report.missing) + len(report.extra) + len(report.shape_mismatches) + (report.num_keys == 0)
    return CheckResult(f"manifest {report.summary()}", float(errors), 0.0)


def _clip_towers(config: dict) -> dict[str, torch.nn.Module]:
    """The two open_clip wrappers' modules as the checkpoint holds them: the text one without
    `visual`, the image one without the text `transformer`."""
    import open_clip

    towers = {}
    for prefix, dropped in ((cond.TEXT_PREFIX, "visual"), (cond.IMAGE_PREFIX, "transformer")):
        clip = open_clip.create_model(cond.clip_arch(config), pretrained=None, device="meta")
        delattr(clip, dropped)
        towers[prefix] = clip
    return towers


def _schedule_report(manifest: dict, config: dict) -> ManifestReport:
    schedule = NoiseSchedule.from_model_params(model_params(config))
    ours = {name: (schedule.num_steps,) for name in SCHEDULE_BUFFERS}
    ours["scale_arr"] = tuple(schedule.scale_arr.shape)
    expected = {k: tuple(s) for k, s in manifest_entries(manifest).items() if "." not in k}
    return compare_shapes("<schedule buffers>", ours, expected)


def run(folder: Path, config: dict, device: str = "cpu") -> list[CheckResult]:
    """`config` (the tiny one) is not used: the manifest describes the real model."""
    manifest = json.loads((Path(folder) / FIXTURE).read_text())
    real = load_config()
    with torch.device("meta"):
        parts = {**full_size_parts(real), FIRST_STAGE_PREFIX: AutoencoderKL(vae_params(real)), **_clip_towers(real)}
        pointmap_vae = AutoencoderKL(pointmap_vae_params(real))
    reports = [check_manifest_part(manifest, prefix, module) for prefix, module in parts.items()]
    reports.append(_schedule_report(manifest, real))

    reports.append(compare_shapes("vae.ckpt model.", state_shapes(pointmap_vae.state_dict()),
                                  {e["name"]: tuple(e["shape"]) for e in manifest["vae_ckpt"]["state_dict"]}))

    entries = manifest_entries(manifest)
    covered = set().union(*({prefix + k for k in module.state_dict()} for prefix, module in parts.items()))
    covered |= {k for k in entries if "." not in k}
    uncovered = sorted(set(entries) - covered)
    results = [_result(r) for r in reports]
    results.append(CheckResult(f"manifest model.ckpt keys covered: {len(covered)}/{len(entries)}"
                               + (f" (e.g. missing {uncovered[0]})" if uncovered else ""), float(len(uncovered)), 0.0))
    return results
