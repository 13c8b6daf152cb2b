"""A converted model directory, for any model: fp16 (or bf16, fp32) safetensors, config.json and a manifest.

    DIR/
      config.json      {"model": <name>, "format_version", "dtype", "config": the model's params, ...}
      <part>.safetensors  one per network (the model's `ModelDirLayout.weight_files`)
      manifest.json    {"model": <name>, "format_version", "generator", "files": {file: {sha256, bytes}}}

Every file is checked against manifest.json (size and sha256) before use, so a missing, truncated or
foreign file is named instead of half-loaded; weights are safetensors only (never unpickled). A model's
package names its files and its fix in one `ModelDirLayout` (Geo4D: geo4d/model_dir.py).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import save_file

from .. import __version__
from ..errors import ModelError
from ..formats.atomic import recover, staged_dir
from ..paths import check_outside, check_replaceable, written_by_parallax

FORMAT_VERSION = 1
MAX_HEADER = 100_000_000  # bytes: the safetensors format's own limit of a header
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
# The folder of ONNX Runtime graphs a model exports into its directory on first use (`--runtime onnx`).
ONNX_CACHE = "onnx"


def stored_elements(path: Path) -> int:
    """The number of elements of the tensors in the safetensors file `path`, from its header alone (the
    weights are not read): a loaded network's parameters and buffers, with a strict load. ModelError for a
    file whose header is not safetensors'."""
    try:
        with open(path, "rb") as file:
            length = int.from_bytes(file.read(8), "little")
            if not 0 < length <= MAX_HEADER:
                raise ValueError(f"a header of {length} bytes")
            header = json.loads(file.read(length))
        return sum(math.prod(tensor["shape"]) for key, tensor in header.items() if key != "__metadata__")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"{path} is not a safetensors file ({exc})", "convert the model again") from exc


@dataclass(frozen=True)
class ModelDirLayout:
    """What one model's converted directory holds.

    model: the name in config.json and manifest.json ("geo4d"); label: for messages ("Geo4D");
    weight_files: the safetensors files; convert_fix: how to make the directory again ({dir} is replaced);
    extra_files: what else may be there, not in the manifest (Geo4D's "onnx/" cache of exported graphs)."""

    model: str
    label: str
    weight_files: tuple[str, ...]
    convert_fix: str
    extra_files: tuple[str, ...] = ()

    @property
    def manifest_files(self) -> tuple[str, ...]:
        return ("config.json", *self.weight_files)

    def files(self, folder: Path) -> set[str] | None:
        """Every file the directory names, or None when its manifest.json does not say it is one of this model's."""
        try:
            manifest = json.loads((Path(folder) / "manifest.json").read_text())
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(manifest, dict) or manifest.get("model") != self.model \
                or not isinstance(manifest.get("files"), dict):
            return None
        return {"manifest.json", *self.manifest_files, *self.extra_files}

    def is_model_dir(self, folder: Path) -> bool:
        return written_by_parallax(folder, self.files)

    def check_target(self, out_dir: str | Path, inputs: dict[str, str | Path | None]) -> Path:
        """The absolute out_dir, or InputError when a converted model may not be written there: it exists and
        is neither empty nor a model directory Parallax wrote, or an input lies inside it (engine/paths.py).
        What a killed earlier write left there is tidied first (atomic.recover)."""
        out_dir = Path(out_dir).expanduser().absolute()
        recover(out_dir, self.is_model_dir)
        check_replaceable(out_dir, f"converted {self.label} model directory", self.files)
        check_outside(out_dir, inputs)
        return out_dir

    def write(self, out_dir: Path, states: dict[str, dict[str, torch.Tensor]], meta: dict, dtype: str,
              log: Callable[[str], None], float32: tuple[str, ...] = ()) -> None:
        """Write the directory at out_dir (an older one there is replaced only on success).

        states: {file stem: state dict} for every weight file, emptied as they are written, stored in
        `dtype` (one of DTYPES) except the stems in `float32`; meta: config.json's entries beside "model",
        "format_version" and "dtype" (at least "config")."""
        with staged_dir(out_dir, self.is_model_dir) as tmp:
            for name in self.weight_files:
                stem = name.removesuffix(".safetensors")
                kept = "fp32" if stem in float32 else dtype
                log(f"writing {name} ({kept})")
                _save(states.pop(stem), tmp / name, DTYPES[kept])
            (tmp / "config.json").write_text(json.dumps(
                {"model": self.model, "format_version": FORMAT_VERSION, "dtype": dtype, **meta}, indent=1))
            files = {name: {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
                     for name in self.manifest_files}
            (tmp / "manifest.json").write_text(json.dumps(
                {"model": self.model, "format_version": FORMAT_VERSION, "generator": f"parallax {__version__}",
                 "files": files}, indent=1))

    def load_network(self, module: torch.nn.Module, directory: Path, name: str) -> torch.nn.Module:
        """`module` holding the tensors of `directory`/<name>.safetensors (strict: checkpoint_keys.load_part);
        ModelError naming the file and the fix when they do not fit it."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from .geo4d.checkpoint_keys import load_part

        path = Path(directory) / f"{name}.safetensors"
        try:
            return load_part(module, load_file(path))
        except (SafetensorError, RuntimeError) as exc:
            raise ModelError(f"{path} does not load into the {self.label} {name} ({str(exc).splitlines()[0]})",
                             self.convert_fix.format(dir=directory)) from exc

    def read(self, directory: str | Path) -> dict:
        """Check `directory` against its manifest without reading the weights (every file there, of the size the
        manifest says); return its config.json. ModelError names the bad file. Cheap: the pipeline calls it
        before the model loads, `verify` then hashes the files."""
        directory = Path(directory).expanduser()
        fix = self.convert_fix.format(dir=directory)
        if not directory.is_dir():
            raise ModelError(f"the {self.label} model directory {directory} does not exist", fix)
        manifest_path = directory / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text())
            files = manifest["files"]
        except FileNotFoundError:
            raise ModelError(f"{manifest_path} is missing: {directory} is not a converted model directory", fix)
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{manifest_path} is corrupt ({exc})", fix) from exc
        if manifest.get("model", self.model) != self.model:
            raise ModelError(f"{directory} holds a converted {manifest.get('model')!r} model, not {self.label}", fix)
        for name in self.manifest_files:
            path = directory / name
            if name not in files:
                raise ModelError(f"{manifest_path} does not list {name}", fix)
            if not path.is_file():
                raise ModelError(f"{path} is missing", fix)
            if path.stat().st_size != files[name]["bytes"]:
                raise ModelError(f"{path} has {path.stat().st_size} bytes, the manifest says {files[name]['bytes']} "
                                 "(truncated or replaced)", fix)
        try:
            return json.loads((directory / "config.json").read_text())
        except (OSError, ValueError, RecursionError) as exc:
            raise ModelError(f"{directory / 'config.json'} is unreadable ({exc})", fix) from exc

    def verify(self, directory: str | Path) -> dict:
        """Check `directory` against its manifest (`read`) and every file's sha256; return its config.json.
        ModelError names the bad file."""
        config = self.read(directory)
        directory = Path(directory).expanduser()
        files = json.loads((directory / "manifest.json").read_text())["files"]
        for name in self.manifest_files:
            if sha256_file(directory / name) != files[name]["sha256"]:
                raise ModelError(f"{directory / name} is corrupt: its sha256 differs from the manifest",
                                 self.convert_fix.format(dir=directory))
        return config


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
    if overflow:  # the sources are finite (the converters check): these values lie beyond the dtype's range
        raise ModelError(f"{len(overflow)} tensors of {path.stem} overflow {dtype} (the first {overflow[0]})",
                         "convert with --dtype bf16 or fp32")
    save_file(cast, path)
