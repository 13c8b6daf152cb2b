"""Fetching Geo4D's official checkpoints, verifying them and converting them (`python -m engine download`).

Geo4D's README publishes its two checkpoints as Google Drive files (no Hugging Face repository):
vae.ckpt (the fine-tuned point-map VAE) and model.ckpt (the whole model). Downloads resume from a
`.part` file; a finished file is verified by loading it safely (weights_only) before it is kept.
Where the network refuses, the command prints the manual steps instead.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import ModelError

GDRIVE_URL = "https://drive.usercontent.google.com/download?id={id}&export=download&confirm=t"
# File ids from the `gdown` lines of https://github.com/jzr99/Geo4D README.md.
GEO4D_FILES = {
    "model.ckpt": "11K0ubqytun-SA5RIOgR7ejNIR8B4uois",
    "vae.ckpt": "10SPKkOpou2lKl9bwkgx1d6YocYkmSxQl",
}
DOWNLOAD_ROOT = Path("~/.cache/parallax/downloads")


def source_urls(mirror: str | None) -> dict[str, str]:
    if mirror:
        return {name: f"{mirror.rstrip('/')}/{name}" for name in GEO4D_FILES}
    return {name: GDRIVE_URL.format(id=file_id) for name, file_id in GEO4D_FILES.items()}


def download_file(url: str, dest: Path, timeout: float = 30.0) -> None:
    """Download url to dest, resuming dest.part when the server honours Range requests."""
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        resumed = response.status == 206
        ctype = response.headers.get("Content-Type", "")
        if ctype.startswith("text/html"):
            # Google Drive answers quota and permission problems with an HTML page, not an error code.
            raise urllib.error.URLError(f"{url} returned a web page instead of the file (quota or access limit)")
        with open(part, "ab" if resumed else "wb") as f:
            while block := response.read(1 << 22):
                f.write(block)
    os.replace(part, dest)


def verify_checkpoint(path: Path, role: str) -> None:
    """Refuse a file that is not a safely loadable checkpoint of the expected part (ModelError)."""
    from .geo4d.convert import load_checkpoint_state_dict, pointmap_vae_state, split_model_state

    state = load_checkpoint_state_dict(path, role)
    if role == "model.ckpt":
        split_model_state(state)
    else:
        pointmap_vae_state(state)


def manual_steps(download_dir: Path, out: Path, urls: dict[str, str]) -> str:
    lines = ["The checkpoints could not be downloaded here. To install Geo4D by hand:",
             "  1. On a machine with internet access, download (about 10 GB in all):"]
    lines += [f"       {name}: {url}" for name, url in urls.items()]
    lines += ["     (or `pip install gdown` and `gdown <id>` with the ids in those URLs; see "
              "https://github.com/jzr99/Geo4D#setup)",
              f"  2. Put both files in {download_dir}/",
              "  3. Convert them (safe load, fp16 safetensors, sha256 manifest):",
              f"       python -m engine convert geo4d --model-ckpt {download_dir}/model.ckpt "
              f"--vae-ckpt {download_dir}/vae.ckpt --out {out}",
              "  By downloading you accept the licences listed in docs/models.md."]
    return "\n".join(lines)


def download_geo4d(download_dir: str | None, out: str | None, mirror: str | None, convert: bool = True) -> int:
    """Download (or resume), verify and convert Geo4D's checkpoints; 1 after printing the manual steps when
    the network refuses. download_dir None: ~/.cache/parallax/downloads/geo4d; out None: the default model
    directory; mirror: a base URL serving model.ckpt and vae.ckpt instead of Google Drive."""
    from .geo4d.model_dir import default_model_dir

    download_dir = Path(download_dir or DOWNLOAD_ROOT / "geo4d").expanduser().absolute()
    out = Path(out).expanduser().absolute() if out else default_model_dir("geo4d")
    urls = source_urls(mirror)
    download_dir.mkdir(parents=True, exist_ok=True)
    for name, url in urls.items():
        dest = download_dir / name
        if not dest.is_file():
            print(f"downloading {name} from {url}")
            try:
                download_file(url, dest)
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                print(f"download of {name} failed: {getattr(exc, 'reason', exc)}", file=sys.stderr)
                print(manual_steps(download_dir, out, urls), file=sys.stderr)
                return 1
        print(f"verifying {dest}")
        try:
            verify_checkpoint(dest, name)
        except ModelError:
            dest.rename(dest.with_name(dest.name + ".bad"))  # never resume onto a bad file
            raise
    if not convert:
        print(f"checkpoints verified in {download_dir}")
        return 0
    from .geo4d.convert import convert_geo4d

    convert_geo4d(download_dir / "model.ckpt", download_dir / "vae.ckpt", out)
    return 0
