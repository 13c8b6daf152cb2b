"""`python -m engine check-fixtures FOLDER`: reproduce a folder of Geo4D golden fixtures.

Runs every module of `engine/models/geo4d/checks/` on the folder (its tiny configuration is read
from its `tiny_config.json`), then the full-size state-dict manifest check, prints one line per
result with the max error and the tolerance, and exits 1 on any miss.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from pathlib import Path

from ...errors import InputError
from . import checks
from .checks import CheckResult
from .config import load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="fixture folder (layout of ../shared/fixtures/geo4d/README.md)")
    parser.add_argument("--only", default="", help="run only check modules whose name contains this text")


def check_modules() -> list:
    """The check modules, in name order."""
    return [importlib.import_module(f"{checks.__name__}.{info.name}")
            for info in sorted(pkgutil.iter_modules(checks.__path__), key=lambda m: m.name)]


def run_checks(folder: Path, only: str = "") -> list[tuple[str, CheckResult]]:
    """[(fixture file, result)] for every check module whose fixture file is in `folder`."""
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))  # the fixtures were made with 2 threads
    config = load_config(folder / "tiny_config.json")
    results = []
    for module in check_modules():
        if only and only not in module.__name__.rsplit(".", 1)[-1]:
            continue
        fixture = module.FIXTURE
        if not (folder / fixture).is_file():
            results.append((fixture, CheckResult(f"{fixture} is missing from the folder", float("inf"), 0.0)))
            continue
        with torch.no_grad():
            results.extend((fixture, r) for r in module.run(folder, config))
    return results


SCHEDULE_BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                    "posterior_mean_coef1", "posterior_mean_coef2", "scale_arr")


def manifest_results(folder: Path) -> list[CheckResult]:
    """The full-size check: our networks built at the real Geo4D size (meta device, no memory)
    against every key and shape of the official model.ckpt and vae.ckpt (`full_manifest.json`).
    max_error = number of missing, extra or wrong-shape keys; every key must belong to a part."""
    import json

    import torch

    from ...sampling.schedule import NoiseSchedule
    from .conditioning import full_size_clip_parts
    from .config import model_params, pointmap_vae_params, vae_params
    from .manifest import check_manifest_part, full_size_parts, manifest_entries
    from .vae import AutoencoderKL

    if not (folder / "full_manifest.json").is_file():
        return [CheckResult("full_manifest.json is missing from the folder", float("inf"), 0.0)]
    manifest = json.loads((folder / "full_manifest.json").read_text())
    config = load_config()
    with torch.device("meta"):
        parts = {**full_size_parts(config), "first_stage_model.": AutoencoderKL(vae_params(config)),
                 **full_size_clip_parts(config)}
        pointmap_vae = AutoencoderKL(pointmap_vae_params(config))
    results = []
    for prefix, module in parts.items():
        report = check_manifest_part(manifest, prefix, module)
        results.append(_manifest_result(f"model.ckpt {report.summary()}", report))
    entries = manifest_entries(manifest)
    # The schedule buffers are recomputed from the config (sampling/schedule.py), not loaded.
    schedule = NoiseSchedule.from_model_params(model_params(config))
    expected = {name: (schedule.num_steps,) for name in SCHEDULE_BUFFERS}
    expected["scale_arr"] = (len(schedule.scale_arr),)
    top = {k: v for k, v in entries.items() if "." not in k}
    bad = sorted(set(top) ^ set(expected)) + sorted(k for k in set(top) & set(expected) if top[k] != expected[k])
    results.append(CheckResult(f"model.ckpt schedule buffers: {len(top)} keys" + (f", bad {bad[:3]}" if bad else ""),
                               float(len(bad)), 0.0))
    owned = [p for p in parts]
    unowned = sorted(k for k in entries if "." in k and not k.startswith(tuple(owned)))
    results.append(CheckResult(f"model.ckpt keys owned by no part: {len(unowned)}"
                               + (f" (e.g. {unowned[0]})" if unowned else "") + f", of {len(entries)}",
                               float(len(unowned)), 0.0))
    vae_manifest = {"model_ckpt": {"state_dict": [{"name": e["name_in_file"], "shape": e["shape"]}
                                                  for e in manifest["vae_ckpt"]["state_dict"]]}}
    report = check_manifest_part(vae_manifest, "model.", pointmap_vae)
    results.append(_manifest_result(f"vae.ckpt {report.summary()}", report))
    return results


def _manifest_result(name: str, report) -> CheckResult:
    errors = len(report.missing) + len(report.extra) + len(report.shape_mismatches) + (report.num_keys == 0)
    return CheckResult(name, float(errors), 0.0)


def run(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not (folder / "tiny_config.json").is_file():
        raise InputError(f"{folder} has no tiny_config.json: it is not a Geo4D fixture folder",
                         "pass a folder laid out as ../shared/fixtures/geo4d (see its README.md)")
    results = run_checks(folder, args.only)
    if not args.only or args.only in "full_manifest":
        results += [("full_manifest.json", r) for r in manifest_results(folder)]
    misses = 0
    for fixture, r in results:
        misses += not r.ok
        print(f"{'ok  ' if r.ok else 'MISS'} {fixture:<28} {r.name:<48} max error {r.max_error:.3g}"
              f"  (tolerance {r.tolerance:.3g})")
    print(f"{len(results) - misses}/{len(results)} checks within tolerance")
    return 1 if misses or not results else 0
