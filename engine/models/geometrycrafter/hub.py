"""GeometryCrafter's weights from the Hugging Face hub (`download geometrycrafter`) and their conversion into
a model directory (`convert geometrycrafter`, layout in model_dir.py).

Three hub repositories, laid out under the download folder as <owner>/<name>/<file>:
- TencentARC/GeometryCrafter: the two UNets and the point-map VAE (diffusers folders);
- stabilityai/stable-video-diffusion-img2vid-xt: the SVD VAE and CLIP image encoder (fp16 variant files) and the
  scheduler and feature-extractor configs (the SVD UNet is not needed); a gated repository: accept its licence
  on the hub and give a token (HF_TOKEN or `huggingface-cli login`);
- Ruicheng/moge-vitl: MoGe's model.pt ({"model_config", "model"}), read with torch.load(weights_only=True).

An interrupted file resumes from the byte where it stopped on the next run (a `.part` file and a Range
request, engine/models/download.py). A downloaded LFS file is verified against the sha256 the hub gives for it
(its ETag); conversion then checks every tensor's name and shape against the architecture of the downloaded
configs (strict), refuses NaN or inf, and writes fp16 safetensors (MoGe and the point-map VAE kept float32, as
the official run.py runs them) with a sha256 manifest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

from ...errors import InputError, ModelError
from ...reporting import Progress

GEOMETRYCRAFTER = "TencentARC/GeometryCrafter"
SVD = "stabilityai/stable-video-diffusion-img2vid-xt"
MOGE = "Ruicheng/moge-vitl"
# part -> (repository, its config file or None, its weights file or None)
PARTS = {
    "unet_diff": (GEOMETRYCRAFTER, "unet_diff/config.json", "unet_diff/diffusion_pytorch_model.safetensors"),
    "unet_determ": (GEOMETRYCRAFTER, "unet_determ/config.json", "unet_determ/diffusion_pytorch_model.safetensors"),
    "point_map_vae": (GEOMETRYCRAFTER, "point_map_vae/config.json",
                      "point_map_vae/diffusion_pytorch_model.safetensors"),
    "vae": (SVD, "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors"),
    "image_encoder": (SVD, "image_encoder/config.json", "image_encoder/model.fp16.safetensors"),
    "scheduler": (SVD, "scheduler/scheduler_config.json", None),
    "feature_extractor": (SVD, "feature_extractor/preprocessor_config.json", None),
    "moge": (MOGE, None, "model.pt"),
}
FLOAT32_PARTS = ("point_map_vae", "moge")  # float32 in the official run.py


def hub_files() -> dict[str, list[str]]:
    """{repository: the files it gives}."""
    files: dict[str, list[str]] = {}
    for repo, config, weights in PARTS.values():
        files.setdefault(repo, []).extend(f for f in (config, weights) if f)
    return files


def download_geometrycrafter(download_dir: Path, endpoint: str | None = None, token: str | None = None,
                             log: Callable[[str], None] = print, progress: Progress | None = None) -> None:
    """Download (or resume) every file of hub_files() into download_dir/<owner>/<name>/, each LFS file checked
    against the sha256 the hub gives for it. ModelError names a file that could not be fetched or differs.
    progress hears ("downloading <repo>/<file>", fraction of that file) as bytes arrive; an exception it raises (a
    cancel) stops the download and keeps the .part for the next run.

    huggingface_hub resolves each file (URL, redirects, size, ETag, the token's headers); the bytes go through
    engine.models.download.download_file into <file>.part, so an interrupted file resumes from the byte where
    it stopped on the next run. (huggingface_hub 1.x/2.x downloads into a temporary file of its own, unique to
    the process, and deletes it when a download fails: its partial files are never resumed across runs.)"""
    import urllib.error

    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    from huggingface_hub.utils import build_hf_headers

    from ..download import download_file
    from ..model_dir import sha256_file

    headers = build_hf_headers(token=token)
    for repo, files in hub_files().items():
        for name in files:
            dest = download_dir / repo / name
            try:
                meta = get_hf_file_metadata(hf_hub_url(repo, name, endpoint=endpoint), token=token)
                if not (dest.is_file() and meta.size is not None and dest.stat().st_size == meta.size):
                    log(f"downloading {repo}/{name}")
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    label = f"downloading {repo}/{name}"  # download_file's own label names the file only
                    report = None if progress is None else (lambda _, done, label=label: progress(label, done))
                    download_file(meta.location, dest, headers=headers, progress=report)
            except (HfHubHTTPError, LocalEntryNotFoundError, urllib.error.URLError, OSError) as exc:
                gated = " (a gated repository: accept its licence on the hub, then set HF_TOKEN)" if repo == SVD else ""
                raise ModelError(f"could not download {repo}/{name}{gated}: {str(exc).splitlines()[0]}",
                                 "run the same command again (it resumes), or check the network and the token") \
                    from exc
            etag = meta.etag or ""
            if re.fullmatch(r"[0-9a-f]{64}", etag) and sha256_file(dest) != etag:
                dest.rename(dest.with_name(dest.name + ".bad"))  # never kept, never resumed onto
                raise ModelError(f"{dest} differs from the hub's file (its sha256 is not {etag})",
                                 "run the same command again to download it afresh")


def read_hub_folder(folder: Path) -> tuple[dict[str, dict], dict[str, Path]]:
    """({part: config kwargs}, {part: weights file}) of a download folder laid out as download_geometrycrafter
    writes it. MoGe's configuration is the `model_config` inside its model.pt."""
    folder = Path(folder).expanduser()
    config, weights = {}, {}
    for name, (repo, config_file, weights_file) in PARTS.items():
        for file in (config_file, weights_file):
            if file and not (folder / repo / file).is_file():
                raise InputError(f"{folder / repo / file} is missing",
                                 f"download the weights first: python -m engine download geometrycrafter "
                                 f"--download-dir {folder}")
        if config_file:
            config[name] = json.loads((folder / repo / config_file).read_text())
        if weights_file:
            weights[name] = folder / repo / weights_file
    return config, weights


def load_moge_checkpoint(path: Path) -> tuple[dict, dict]:
    """(model_config, state dict) of MoGe's model.pt, loaded with weights_only=True (no pickled code runs)."""
    import pickle

    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise ModelError(f"{path} is not a MoGe checkpoint that loads safely ({str(exc).splitlines()[0]})",
                         "download Ruicheng/moge-vitl model.pt again") from exc
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict) \
            or not isinstance(checkpoint.get("model_config"), dict):
        raise ModelError(f"{path} is not a MoGe checkpoint: it lacks 'model_config' and 'model'",
                         "download Ruicheng/moge-vitl model.pt again")
    return checkpoint["model_config"], checkpoint["model"]


def convert_geometrycrafter(download_dir: str | Path, out_dir: str | Path, dtype: str = "fp16",
                            window_length: int | None = None, log: Callable[[str], None] = print) -> Path:
    """Convert a download folder (read_hub_folder) into a model directory (model_dir.py) at out_dir; an older one
    there is replaced only on success. window_length: frames per window (default the official 110)."""
    import torch
    from safetensors.torch import load_file

    from ...formats.writable import check_writable
    from ..geo4d.convert import check_finite
    from ..geo4d.manifest import compare_shapes, state_shapes
    from ..model_dir import DTYPES
    from .model import build_part
    from . import WINDOW_LENGTH
    from .model_dir import LAYOUT, NETWORKS

    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}", f"choose one of {', '.join(DTYPES)}")
    download_dir = Path(download_dir).expanduser().absolute()
    out_dir = LAYOUT.check_target(out_dir, {"download folder": download_dir})
    check_writable(out_dir)
    config, weights = read_hub_folder(download_dir)
    states = {}
    for name in NETWORKS:
        log(f"loading {weights[name]} (safe loading only)")
        if name == "moge":
            config["moge"], states["moge"] = load_moge_checkpoint(weights["moge"])
        else:
            states[name] = load_file(weights[name])
    for name in NETWORKS:
        with torch.device("meta"):  # shapes only: nothing is allocated
            expected = state_shapes(build_part(config, name).state_dict())
        report = compare_shapes(name, state_shapes(states[name]), expected)
        if not report.ok:
            raise ModelError(f"the {name} weights in {weights[name]} do not match the architecture of its config: "
                             f"{report.differences()}", "download the official files again")
    check_finite(states)
    meta = {"config": config, "window_length": int(window_length or WINDOW_LENGTH),
            "sources": {name: f"{PARTS[name][0]}/{PARTS[name][2]}" for name in NETWORKS}}
    LAYOUT.write(out_dir, states, meta, dtype, log, float32=FLOAT32_PARTS)
    log(f"wrote {out_dir}")
    return out_dir
