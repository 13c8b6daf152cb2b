"""Fetching Geo4D's official checkpoints, verifying them and converting them (`python -m engine download`).

Geo4D's README publishes its two checkpoints as Google Drive files (no Hugging Face repository):
vae.ckpt (the fine-tuned point-map VAE) and model.ckpt (the whole model). Downloads resume from a
`.part` file, which becomes the file only when all the bytes the server declared arrived; a finished file is
verified (pinned size and sha256 where known, zip CRCs, a safe weights_only load) before it is kept.
Where the network refuses, the command prints the manual steps instead.
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import InputError, ModelError
from ..reporting import Progress

GDRIVE_URL = "https://drive.usercontent.google.com/download?id={id}&export=download&confirm=t"
# File ids from the `gdown` lines of https://github.com/jzr99/Geo4D README.md.
GEO4D_FILES = {
    "model.ckpt": "11K0ubqytun-SA5RIOgR7ejNIR8B4uois",
    "vae.ckpt": "10SPKkOpou2lKl9bwkgx1d6YocYkmSxQl",
}
DOWNLOAD_ROOT = Path("~/.cache/parallax/downloads")
# No checkpoint is larger (model.ckpt is about 10 GB); a server sending more is not serving one.
MAX_DOWNLOAD_BYTES = 32 * 2**30


@dataclass(frozen=True)
class Pin:
    size: int     # bytes
    sha256: str   # hex digest


# Size and sha256 of the official files. Unknown here: Geo4D publishes neither (README and Google Drive page
# as of 2026-12), and this machine cannot reach Google Drive to measure them. Until they are pinned, a download
# is verified by its declared size (Content-Length), the zip CRC-32 of every entry and a safe load of the
# expected state_dict; `verifying` prints the sha256 so a user can compare it with a trusted copy.
CHECKPOINT_PINS: dict[str, Pin | None] = {"model.ckpt": None, "vae.ckpt": None}


def source_urls(mirror: str | None) -> dict[str, str]:
    if mirror:
        return {name: f"{mirror.rstrip('/')}/{name}" for name in GEO4D_FILES}
    return {name: GDRIVE_URL.format(id=file_id) for name, file_id in GEO4D_FILES.items()}


def download_file(url: str, dest: Path, timeout: float = 30.0, max_bytes: int = MAX_DOWNLOAD_BYTES,
                  progress: Progress | None = None, headers: dict[str, str] | None = None) -> None:
    """Download url to dest through dest.part, resuming a .part the server can continue (Range requests).
    headers: sent with every request (e.g. the hub's authorisation).

    dest appears only when the server's declared size arrived in full: a dropped connection raises ModelError
    and keeps the .part for the next run to resume. A .part that already holds the whole file (the server
    answers 416) is finished; one the server cannot continue is started again. A file larger than max_bytes
    is refused before (or, without a declared size, while) it is written. progress hears ("downloading <name>",
    fraction) after every block; an exception it raises (a cancel) keeps the .part for the next run."""
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={**(headers or {}), **({"Range": f"bytes={have}-"} if have else {})})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not have:
            raise
        total = _content_range(exc.headers.get("Content-Range", ""))[2]
        if total == have:  # the .part is the whole file: an earlier run ended before renaming it
            os.replace(part, dest)
            return
        part.unlink()  # longer than the file, or a size the server does not say: start again
        return download_file(url, dest, timeout, max_bytes, progress, headers)
    with response:
        ctype = response.headers.get("Content-Type", "")
        if ctype.startswith("text/html"):
            # Google Drive answers quota and permission problems with an HTML page, not an error code.
            raise urllib.error.URLError(f"{url} returned a web page instead of the file (quota or access limit)")
        start, total = 0, _int(response.headers.get("Content-Length"))
        if response.status == 206:
            if "Content-Range" in response.headers:
                start, _, total = _content_range(response.headers["Content-Range"])
            else:  # RFC 9110 requires Content-Range; a server without it continues where it was asked to
                start, total = have, None if total is None else have + total
            if start != have and not have:
                raise ModelError(f"{url} answered with a part of the file that was not asked for "
                                 f"(Content-Range {response.headers.get('Content-Range')!r})",
                                 "check the URL (or --mirror) serves the file itself")
            if start != have:  # not where the .part ends: its bytes cannot be joined
                response.close()
                part.unlink()
                return download_file(url, dest, timeout, max_bytes, progress, headers)
        if total is not None and total > max_bytes:
            raise ModelError(f"{url} is {total:,} bytes, more than the {max_bytes:,} a checkpoint may have",
                             "check the URL (or --mirror) serves the Geo4D checkpoint")
        size = start
        with open(part, "ab" if start else "wb") as f:
            try:
                while block := response.read(1 << 22):
                    size += len(block)
                    if size > max_bytes:
                        raise ModelError(f"{url} sent more than {max_bytes:,} bytes, more than a checkpoint may "
                                         "have", "check the URL (or --mirror) serves the Geo4D checkpoint")
                    f.write(block)
                    if progress is not None:
                        progress(f"downloading {dest.name}", size / total if total else 0.0)
            except (ConnectionError, TimeoutError, http.client.HTTPException):
                total = total if total is not None else -1  # reported below as a dropped connection
    if total is not None and size != total:
        of = f" of {total:,}" if total >= 0 else ""
        raise ModelError(f"the download of {dest.name} stopped after {size:,}{of} bytes (the connection dropped)",
                         f"run the same command again: it resumes from the {size:,} bytes kept in {part}")
    os.replace(part, dest)


def _int(text: str | None) -> int | None:
    return int(text) if text and text.strip().isdigit() else None


def _content_range(header: str) -> tuple[int | None, int | None, int | None]:
    """(first, last, total) of a Content-Range header `bytes A-B/T` or `bytes */T` (None where not given)."""
    unit, _, spec = header.strip().partition(" ")
    span, _, total = spec.partition("/")
    first, _, last = span.partition("-")
    return _int(first), _int(last), _int(total) if unit == "bytes" else None


def verify_checkpoint(path: Path, role: str, pin: Pin | None = None) -> None:
    """Refuse (ModelError) a file that is not the expected checkpoint: its pinned size and sha256 where known
    (pin; by default CHECKPOINT_PINS[role]), intact zip CRCs, then a safe load of the expected part."""
    from .geo4d.convert import load_checkpoint_state_dict, pointmap_vae_state, split_model_state
    from .geo4d.model_dir import sha256_file

    pin = pin or CHECKPOINT_PINS.get(role)
    if pin is not None:
        size = path.stat().st_size
        if size != pin.size:
            raise ModelError(f"{path} is {size:,} bytes; the official {role} is {pin.size:,}", "download it again")
        digest = sha256_file(path)
        if digest != pin.sha256:
            raise ModelError(f"{path} has sha256 {digest}; the official {role} has {pin.sha256}",
                             "download it again from the official source")
    state = load_checkpoint_state_dict(path, role)  # checks the zip CRCs before loading
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
              "  By downloading you accept the licences shown above."]
    return "\n".join(lines)


def accept_licences(model: str, accepted: bool, ask: Callable[[str], str] = input) -> None:
    """Show the licences of `model`'s weights (its package's LICENCES); go on only when they are accepted
    (--accept-licences, or "yes" typed at a terminal)."""
    from . import model_package

    print(model_package(model).LICENCES)
    if accepted:
        print("accepted with --accept-licences")
        return
    if sys.stdin is not None and sys.stdin.isatty() and ask("Type yes to accept them: ").strip().lower() == "yes":
        return
    raise InputError(f"the licences of {model_package(model).LABEL}'s weights were not accepted",
                     "read them above, then run again with --accept-licences")


def download_geo4d(download_dir: str | None, out: str | None, mirror: str | None, accepted: bool = False,
                   convert: bool = True, progress: Progress | None = None) -> int:
    """Show the licences and go on only when accepted; download (or resume), verify and convert Geo4D's
    checkpoints; 1 after printing the manual steps when the network refuses. download_dir None:
    ~/.cache/parallax/downloads/geo4d; out None: the default model directory; mirror: a base URL serving
    model.ckpt and vae.ckpt instead of Google Drive; progress: download_file's."""
    from . import default_model_dir

    from ..formats.writable import check_writable

    download_dir = Path(download_dir or DOWNLOAD_ROOT / "geo4d").expanduser().absolute()
    out = Path(out).expanduser().absolute() if out else default_model_dir("geo4d")
    accept_licences("geo4d", accepted)
    check_writable(download_dir / "model.ckpt", "--download-dir")  # before gigabytes are downloaded
    if convert:
        from .geo4d.model_dir import check_model_target

        check_model_target(out, {"download folder": download_dir})  # before 10 GB are downloaded
        check_writable(out)
    urls = source_urls(mirror)
    download_dir.mkdir(parents=True, exist_ok=True)
    for name, url in urls.items():
        dest = download_dir / name
        if not dest.is_file():
            print(f"downloading {name} from {url}")
            try:
                download_file(url, dest, progress=progress)
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
        from .geo4d.model_dir import sha256_file

        print(f"{name}: {dest.stat().st_size:,} bytes, sha256 {sha256_file(dest)}")
    if not convert:
        print(f"checkpoints verified in {download_dir}")
        return 0
    from .geo4d.convert import convert_geo4d

    convert_geo4d(download_dir / "model.ckpt", download_dir / "vae.ckpt", out)
    return 0


def download_geometrycrafter_model(download_dir: str | None, out: str | None, endpoint: str | None,
                                   token: str | None, accepted: bool, convert: bool = True,
                                   progress: Progress | None = None) -> int:
    """Show the licences and go on only when accepted; download (or resume) and verify GeometryCrafter's hub
    files (geometrycrafter/hub.py), then convert them. download_dir None: ~/.cache/parallax/downloads/
    geometrycrafter; out None: the default model directory; progress: hears the bytes of each file."""
    from . import default_model_dir
    from ..formats.writable import check_writable
    from .geometrycrafter.hub import convert_geometrycrafter, download_geometrycrafter
    from .geometrycrafter.model_dir import LAYOUT

    download_dir = Path(download_dir or DOWNLOAD_ROOT / "geometrycrafter").expanduser().absolute()
    out = Path(out).expanduser().absolute() if out else default_model_dir("geometrycrafter")
    accept_licences("geometrycrafter", accepted)
    check_writable(download_dir / "model_index.json", "--download-dir")  # before gigabytes are downloaded
    if convert:
        LAYOUT.check_target(out, {"download folder": download_dir})
        check_writable(out)
    download_dir.mkdir(parents=True, exist_ok=True)
    download_geometrycrafter(download_dir, endpoint, token, progress=progress)
    if not convert:
        print(f"files verified in {download_dir}")
        return 0
    convert_geometrycrafter(download_dir, out)
    return 0
