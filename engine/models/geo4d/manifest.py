"""The full-size key/shape check: our modules, built at the real Geo4D size on the meta device (no
memory), against the official checkpoint's state-dict manifest (`full_manifest.json` of a fixture
folder: every key, shape and dtype of `model.ckpt`).

Each part is checked under its checkpoint prefix; the check-fixtures command combines the parts
into the 100%-of-keys check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .checkpoint_keys import RESAMPLER_PREFIX, UNET_PREFIX, strip_prefix
from .config import load_config, resampler_params, unet_params
from .resampler import Resampler
from .unet import UNet3D


@dataclass
class ManifestReport:
    """How one module's state dict compares with the manifest entries under `prefix`.

    missing: manifest keys (prefix stripped) the module lacks; extra: module keys the manifest lacks;
    shape_mismatches: (key, module shape, manifest shape)."""

    prefix: str
    num_keys: int
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    shape_mismatches: list[tuple[str, tuple, tuple]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.num_keys > 0 and not (self.missing or self.extra or self.shape_mismatches)

    def summary(self) -> str:
        if self.ok:
            return f"{self.prefix}: all {self.num_keys} keys and shapes match"
        return f"{self.prefix}: {self.differences()}"

    def differences(self) -> str:
        """What differs, counted, with one example each ("no keys" for an empty part)."""
        parts = [f"{label} {len(items)} (e.g. {items[0]})" for label, items in
                 (("missing", self.missing), ("extra", self.extra), ("wrong shape", self.shape_mismatches)) if items]
        return "; ".join(parts or ["no keys"])


def manifest_entries(manifest: dict) -> dict[str, tuple]:
    """{key: shape} of `model.ckpt` in a loaded full_manifest.json."""
    return {entry["name"]: tuple(entry["shape"]) for entry in manifest["model_ckpt"]["state_dict"]}


def state_shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple]:
    """{key: shape} of a state dict."""
    return {k: tuple(v.shape) for k, v in state.items()}


def check_manifest_part(manifest: dict, prefix: str, module: nn.Module) -> ManifestReport:
    """Compare `module.state_dict()` with the manifest keys that start with `prefix` (stripped).
    Keys that start with a longer prefix owned by another part are the caller's to exclude by
    checking that part under its own prefix."""
    expected = strip_prefix(manifest_entries(manifest), prefix)
    return compare_shapes(prefix, state_shapes(module.state_dict()), expected)


def compare_shapes(label: str, ours: dict[str, tuple], expected: dict[str, tuple]) -> ManifestReport:
    """Compare our {key: shape} with the expected one (the manifest's, or a module's); `label` names
    the part in the report. missing: expected keys ours lacks; extra: our keys not expected."""
    return ManifestReport(
        prefix=label,
        num_keys=len(expected),
        missing=sorted(set(expected) - set(ours)),
        extra=sorted(set(ours) - set(expected)),
        shape_mismatches=sorted((k, ours[k], expected[k]) for k in set(ours) & set(expected) if ours[k] != expected[k]),
    )


def full_size_parts(config: dict | None = None) -> dict[str, nn.Module]:
    """{checkpoint prefix: module} for the UNet and the Resampler at full size, on the meta device."""
    config = config or load_config()
    with torch.device("meta"):
        return {
            UNET_PREFIX: UNet3D.from_params(unet_params(config)),
            RESAMPLER_PREFIX: Resampler.from_params(resampler_params(config)),
        }

