"""The converted Geo4D model directory: its layout, its writer (convert.py) and its check (weights.py).

    DIR/
      config.json                 {"model": "geo4d", "format_version", "dtype", "config": official params}
      unet.safetensors            model.diffusion_model.*   (prefix stripped)
      vae.safetensors             first_stage_model.*       (SD VAE with its encoder/decoder adaptors)
      pointmap_vae.safetensors    vae.ckpt model.*          (the fine-tuned point-map VAE)
      context.safetensors         "context": float32[1, 77 + 16*16, C], the constant cross-attention context
      manifest.json               sha256 and size of every file above

Every file is checked against manifest.json (size and sha256) before use, so a missing, truncated
or foreign file is named instead of half-loaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import save_file

from ... import __version__
from ...errors import ModelError
from ...formats.atomic import recover, staged_dir
from ...paths import check_outside, check_replaceable, written_by_parallax

FORMAT_VERSION = 1
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
NETWORKS = ("unet", "vae", "pointmap_vae")
WEIGHT_FILES = tuple(f"{name}.safetensors" for name in (*NETWORKS, "context"))
MANIFEST_FILES = ("config.json", *WEIGHT_FILES)
CONVERT_FIX = ("convert the checkpoints again: python -m engine convert geo4d --model-ckpt model.ckpt "
               "--vae-ckpt vae.ckpt --out {dir}  (python -m engine download geo4d says where to get them)")


def model_dir_files(folder: Path) -> set[str] | None:
    """Every file a converted model directory names, or None when its manifest.json does not say it is
    one (every version wrote "model": "geo4d" and the "files" table; newer ones also a "generator")."""
    try:
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(manifest, dict) or manifest.get("model") != "geo4d" or not isinstance(manifest.get("files"), dict):
        return None
    return {"manifest.json", *MANIFEST_FILES}


def _is_model_dir(folder: Path) -> bool:
    return written_by_parallax(folder, model_dir_files)


def check_model_target(out_dir: str | Path, inputs: dict[str, str | Path | None]) -> Path:
    """The absolute out_dir, or InputError when a converted model may not be written there: it exists and
    is neither empty nor a model directory Parallax wrote, or an input lies inside it
    (engine/paths.py). What a killed earlier write left there is tidied first (atomic.recover)."""
    out_dir = Path(out_dir).expanduser().absolute()
    recover(out_dir, _is_model_dir)
    check_replaceable(out_dir, "converted Geo4D model directory", model_dir_files)
    check_outside(out_dir, inputs)
    return out_dir


def write_model_dir(out_dir: Path, networks: dict[str, dict[str, torch.Tensor]], context: torch.Tensor,
                    config: dict, dtype: str, log: Callable[[str], None]) -> None:
    """Write the directory at out_dir (an older one there is replaced only on success).

    networks: {"unet", "vae", "pointmap_vae"} state dicts without prefixes, emptied as they are written
    (stored in `dtype`, one of DTYPES); context: [1, 77 + 16*16, C] (stored in float32)."""
    with staged_dir(out_dir, _is_model_dir) as tmp:
        for name in NETWORKS:
            log(f"writing {name}.safetensors ({dtype})")
            _save(networks.pop(name), tmp / f"{name}.safetensors", DTYPES[dtype])
        save_file({"context": context.detach().float().contiguous().cpu()}, tmp / "context.safetensors")
        (tmp / "config.json").write_text(json.dumps(
            {"model": "geo4d", "format_version": FORMAT_VERSION, "dtype": dtype, "config": config}, indent=1))
        files = {name: {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
                 for name in MANIFEST_FILES}
        (tmp / "manifest.json").write_text(json.dumps(
            {"model": "geo4d", "format_version": FORMAT_VERSION, "generator": f"parallax {__version__}",
             "files": files}, indent=1))


def verify_model_dir(directory: str | Path) -> dict:
    """Check `directory` against its manifest; return its config.json. ModelError names the bad file."""
    directory = Path(directory).expanduser()
    fix = CONVERT_FIX.format(dir=directory)
    if not directory.is_dir():
        raise ModelError(f"the Geo4D model directory {directory} does not exist", fix)
    manifest_path = directory / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except FileNotFoundError:
        raise ModelError(f"{manifest_path} is missing: {directory} is not a converted model directory", fix)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{manifest_path} is corrupt ({exc})", fix) from exc
    for name in MANIFEST_FILES:
        path = directory / name
        if name not in files:
            raise ModelError(f"{manifest_path} does not list {name}", fix)
        if not path.is_file():
            raise ModelError(f"{path} is missing", fix)
        if path.stat().st_size != files[name]["bytes"]:
            raise ModelError(f"{path} has {path.stat().st_size} bytes, the manifest says {files[name]['bytes']} "
                             "(truncated or replaced)", fix)
        if sha256_file(path) != files[name]["sha256"]:
            raise ModelError(f"{path} is corrupt: its sha256 differs from the manifest", fix)
    return json.loads((directory / "config.json").read_text())


def sha256_file(path: Path, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _save(state: dict[str, torch.Tensor], path: Path, dtype: torch.dtype) -> None:
    # Cast one part at a time: peak memory is the largest part (the UNet) in the target dtype,
    # while the memory-mapped source stays on disk.
    cast = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    overflow = [k for k, v in cast.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if overflow:  # the sources are finite (convert.check_finite): these values lie beyond the dtype's range
        raise ModelError(f"{len(overflow)} tensors of {path.stem} overflow {dtype} (the first {overflow[0]})",
                         "convert with --dtype bf16 or fp32")
    save_file(cast, path)
