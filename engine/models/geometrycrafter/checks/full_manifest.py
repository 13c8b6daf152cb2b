"""The full-size state-dict manifests: every hub part built from its real configuration on the meta
device (no memory) against the official keys and shapes in `full_manifest.json` (100 % of the keys,
the same shapes, no extras, the same number of parameters)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ...geo4d.manifest import ManifestReport, compare_shapes, state_shapes
from ..image_encoder import CLIP_MEAN, CLIP_STD, CLIPVisionModelWithProjection
from ..moge import MoGeModel
from ..point_map_vae import PMapAutoencoderKLTemporalDecoder
from ..svd_vae import AutoencoderKLTemporalDecoder
from ..unet import SpatioTemporalUNet
from . import CheckResult

FIXTURE = "full_manifest.json"
DEVICE = None  # shapes of modules built on the meta device, no values

# full_manifest.json part -> the class built from that part's `config`.
PART_CLASSES = {
    "unet_diff": SpatioTemporalUNet,
    "unet_determ": SpatioTemporalUNet,
    "point_map_vae": PMapAutoencoderKLTemporalDecoder,
    "vae": AutoencoderKLTemporalDecoder,
    "image_encoder": CLIPVisionModelWithProjection,
    "moge_prior": MoGeModel,
}


def part_report(name: str, entry: dict) -> tuple[ManifestReport, int, int]:
    """(key/shape report, our parameter count, the manifest's) for one hub part."""
    with torch.device("meta"):
        module = PART_CLASSES[name].from_config(entry["config"])
    expected = {key: tuple(spec["shape"]) for key, spec in entry["state_dict"].items()}
    ours = state_shapes(module.state_dict())
    return compare_shapes(name, ours, expected), sum(math.prod(s) for s in ours.values()), entry["num_numbers"]


def run(folder: Path, config: dict, device: str = "cpu") -> list[CheckResult]:
    """`config` (the tiny one) is not used: the manifest describes the real models."""
    manifest = json.loads((Path(folder) / FIXTURE).read_text())
    results = []
    matched = total = 0
    for name, entry in manifest["parts"].items():
        if not entry.get("state_dict"):
            continue  # scheduler, feature extractor, pipeline index: configuration only
        total += len(entry["state_dict"])
        if name not in PART_CLASSES:
            results.append(CheckResult(f"manifest {name}: no module builds this part", float("inf"), 0.0))
            continue
        report, ours, official = part_report(name, entry)
        errors = len(report.missing) + len(report.extra) + len(report.shape_mismatches) + (report.num_keys == 0)
        matched += report.num_keys - len(report.missing) - len(report.shape_mismatches)
        results.append(CheckResult(f"manifest {report.summary()}", float(errors), 0.0))
        results.append(CheckResult(f"manifest {name}: {ours:,} parameters (official {official:,})",
                                   float(abs(ours - official)), 0.0))
    results.append(CheckResult(f"manifest keys with their shapes: {matched}/{total}", float(total - matched), 0.0))
    extractor = manifest["parts"]["feature_extractor"]["config"]
    results.append(compare_values("manifest feature_extractor mean/std = ours",
                                  [*extractor["image_mean"], *extractor["image_std"]], [*CLIP_MEAN, *CLIP_STD]))
    return results


def compare_values(name: str, official: list[float], ours: list[float]) -> CheckResult:
    return CheckResult(name, max(abs(a - b) for a, b in zip(official, ours, strict=True)), 0.0)
