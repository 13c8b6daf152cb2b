"""Official Geo4D checkpoints -> a converted model directory (layout in model_dir.py).

The CLIP encoders and the Resampler are run once here to compute the constant context (Geo4D's
prompt is fixed and its image branch sees a blank frame) and are then dropped.
"""

from __future__ import annotations

import pickle
import re
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import torch

from ...errors import ModelError
from ...formats.writable import check_writable
from ...sampling.schedule import NoiseSchedule
from .checkpoint_keys import CONDITIONING_PREFIXES, FIRST_STAGE_PREFIX, POINTMAP_VAE_PREFIX, UNET_PREFIX, strip_prefix
from .conditioning import constant_context
from .config import OFFICIAL_CONFIG, load_config, model_params
from .model_dir import DTYPES, NETWORKS, check_model_target, write_model_dir
from .weights import check_state_dicts

# Converted file -> prefix of its keys in the source state_dict.
MODEL_PARTS = {"unet": UNET_PREFIX, "vae": FIRST_STAGE_PREFIX}
# Top-level buffers the sampler recomputes from the config; compared, not converted.
SCHEDULE_BUFFERS = ("alphas_cumprod", "scale_arr")


def load_checkpoint_state_dict(path: str | Path, role: str) -> dict[str, torch.Tensor]:
    """`torch.load(path)["state_dict"]` without executing pickled code, memory-mapped when possible.

    role: "model.ckpt" or "vae.ckpt", for messages.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{role} {path} does not exist", "pass the path of the downloaded checkpoint file")
    check_zip_crcs(path, role)
    try:
        # mmap keeps a 10 GB checkpoint out of RAM; only zip-format (torch >= 1.6) files allow it.
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        wanted = f"it wants to run {found.group(1)}" if found else "torch.load weights_only=True refused it"
        raise ModelError(
            f"{role} {path} needs to run pickled Python code to load ({wanted}), and Parallax never runs "
            "code from a checkpoint",
            "use the official Geo4D checkpoint; if you trust this file, re-save only its tensors in a trusted "
            "environment: torch.save({'state_dict': ckpt['state_dict']}, 'clean.ckpt')") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelError(f"{role} {path} is not a readable PyTorch checkpoint ({exc})",
                         "download it again; the file is probably truncated") from exc
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{role} {path} has no 'state_dict' of tensors",
                         "pass the official Lightning checkpoint (a dict with a 'state_dict' entry)")
    return state


def check_zip_crcs(path: Path, role: str) -> None:
    """ModelError when a zip-format checkpoint has a member whose bytes fail their CRC-32: torch.load with mmap
    never checks them, so flipped bytes would load as wrong weights. (Legacy non-zip checkpoints carry no
    checksums; their damage shows in the safe load.)"""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
        raise ModelError(f"{role} {path} is a damaged zip archive ({exc})",
                         "download it again; the file is probably truncated or corrupted") from None
    if bad is not None:
        raise ModelError(f"{role} {path} is corrupted: the bytes of its entry {bad} fail their CRC-32 check",
                         "download it again (a damaged disk or transfer changed it)")


def split_model_state(state: dict[str, torch.Tensor], role: str = "model.ckpt") -> dict[str, dict[str, torch.Tensor]]:
    """{"unet", "vae", "conditioning"} sub-dicts of the model.ckpt state_dict (prefixes stripped for unet/vae)."""
    parts = {name: strip_prefix(state, prefix) for name, prefix in MODEL_PARTS.items()}
    parts["conditioning"] = {k: v for k, v in state.items() if k.startswith(CONDITIONING_PREFIXES)}
    parts["schedule"] = {k: v for k, v in state.items() if k in SCHEDULE_BUFFERS}
    for name, prefix in [*MODEL_PARTS.items(), ("conditioning", "/".join(CONDITIONING_PREFIXES))]:
        if not parts[name]:
            raise ModelError(f"{role} has no '{prefix}' keys: it is not a Geo4D model checkpoint",
                             "pass Geo4D's model.ckpt as --model-ckpt and its vae.ckpt as --vae-ckpt")
    return parts


def check_schedule(buffers: dict[str, torch.Tensor], config: dict) -> None:
    """Refuse a checkpoint trained with another noise schedule than the config describes (the
    sampler recomputes the schedule from the config, so it must be the one the weights learned)."""
    schedule = NoiseSchedule.from_model_params(model_params(config))
    ours = {"alphas_cumprod": schedule.alphas_cumprod, "scale_arr": schedule.scale_arr}
    for name, value in buffers.items():
        expected = torch.as_tensor(ours[name], dtype=torch.float64)
        if value.shape != expected.shape or not torch.allclose(value.double(), expected, atol=1e-6):
            raise ModelError(f"model.ckpt's {name} differs from the noise schedule of the config "
                             "(a Geo4D checkpoint with another schedule, or a different model)",
                             "pass the official Geo4D model.ckpt, or the --config it was trained with")


def pointmap_vae_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The point-map VAE: keys starting with 'model.', prefix stripped (as the official loader does)."""
    sd = strip_prefix(state, POINTMAP_VAE_PREFIX)
    if not sd or any(k.startswith("diffusion_model.") for k in sd):
        raise ModelError("vae.ckpt does not hold the point-map VAE (keys 'model.encoder.*', 'model.decoder.*')",
                         "pass Geo4D's fine-tuned vae.ckpt as --vae-ckpt and model.ckpt as --model-ckpt")
    return sd


def convert_geo4d(model_ckpt: str | Path, vae_ckpt: str | Path, out_dir: str | Path, dtype: str = "fp16",
                  config_path: str | Path = OFFICIAL_CONFIG,
                  log: Callable[[str], None] = print) -> Path:
    """Convert the official checkpoints into a model directory (model_dir.py).

    Args:
        model_ckpt, vae_ckpt: Geo4D's model.ckpt and vae.ckpt, loaded without running pickled code.
        out_dir: the directory to write; an older converted one there is replaced only on success.
        dtype: storage precision of the networks, "fp16", "bf16" or "fp32" (the context stays float32).
        config_path: the architecture (the official one, or a fixture folder's tiny_config.json).
        log: hears one line per step.

    Returns:
        out_dir, absolute. ModelError names a checkpoint that is not Geo4D's or does not fit the config.
    """
    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}", f"choose one of {', '.join(DTYPES)}")
    out_dir = check_model_target(out_dir, {"model checkpoint": model_ckpt, "VAE checkpoint": vae_ckpt,
                                           "config": config_path})
    config = load_config(config_path)

    check_writable(out_dir)  # before gigabytes are loaded
    log(f"loading {model_ckpt} (weights only, memory-mapped)")
    parts = split_model_state(load_checkpoint_state_dict(model_ckpt, "model.ckpt"))
    log(f"loading {vae_ckpt}")
    parts["pointmap_vae"] = pointmap_vae_state(load_checkpoint_state_dict(vae_ckpt, "vae.ckpt"))
    check_state_dicts(config, {k: parts[k] for k in NETWORKS})
    check_finite(parts)
    check_schedule(parts.pop("schedule"), config)

    log("computing the constant conditioning context (CLIP text + blank-frame image tokens)")
    context = constant_context(parts.pop("conditioning"), config)

    write_model_dir(out_dir, parts, context, config, dtype, log)
    log(f"wrote {out_dir}")
    return out_dir


def check_finite(parts: dict[str, dict[str, torch.Tensor]]) -> None:
    """ModelError naming the tensors that hold NaN or inf (a damaged or diverged checkpoint): a model with them
    runs and returns NaN geometry."""
    bad = [(part, key, int((~torch.isfinite(v)).sum())) for part, state in parts.items() for key, v in state.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        part, key, count = bad[0]
        raise ModelError(f"{len(bad)} tensors of the checkpoints hold NaN or inf values, the first {part} {key} "
                         f"({count} values)", "download the official checkpoints again; a training run that "
                         "diverged or a damaged copy cannot be converted")
