"""Each model's weights as the Blender add-on manages them (the `weights` request, docs/protocol.md): their state
in a model directory (verified against its manifest, missing, or broken with the fix), their licences, and the
jobs that make them: the engine's own download then convert, or convert alone from files downloaded by hand.

`progress` hears the bytes of each download and each step of the conversion; a cancel it raises stops a download
where it is (what arrived stays in the download folder for the next run: Geo4D's `.part` resumes) or a conversion
before its staging folder is renamed into place (engine/formats/atomic.py), so the model directory stays as it was.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, ModelError
from ..reporting import Progress
from . import MODELS, default_model_dir, model_package
from .download import DOWNLOAD_ROOT

ACTIONS = ("check", "download", "convert")
# What a model's downloaded files are, for the message when a folder lacks them (geometrycrafter: hub.PARTS).
GEO4D_FILES = ("model.ckpt", "vae.ckpt")


@dataclass(frozen=True)
class WeightsState:
    """One model's weights in `model_dir` (absolute): state "verified" (every file matches the manifest's size and
    sha256), "missing" (no folder, or an empty one) or "broken" (problem and fix say why); licences: the text the
    engine's `download` shows and asks to be accepted."""

    model: str
    label: str
    model_dir: str
    state: str
    problem: str = ""
    fix: str = ""
    licences: str = ""


def model_dir_of(model: str, model_dir: str | Path | None) -> Path:
    """The absolute model directory: `model_dir`, else the default ($PARALLAX_MODEL_DIR or
    ~/.cache/parallax/models/<model>)."""
    return Path(model_dir or default_model_dir(model)).expanduser().absolute()


def download_dir_of(model: str) -> Path:
    return (DOWNLOAD_ROOT / model).expanduser().absolute()


def _layout(model: str):
    """The model's ModelDirLayout (its package's model_dir.py)."""
    return importlib.import_module(f"{MODELS[model]}.model_dir", __package__).LAYOUT


def check_weights(model: str, model_dir: str | Path | None = None) -> WeightsState:
    """The state of `model`'s weights in `model_dir` (None: the default), verified as every load verifies them
    (ModelDirLayout.verify: the manifest, then the size and sha256 of every file)."""
    package = model_package(model)
    folder = model_dir_of(model, model_dir)
    known = {"model": model, "label": package.LABEL, "model_dir": str(folder), "licences": package.LICENCES}
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return WeightsState(**known, state="missing", problem=f"no {package.LABEL} weights in {folder} yet",
                            fix="download and convert them, or convert the files you downloaded")
    layout = _layout(model)
    if not folder.is_dir() or not layout.is_model_dir(folder):
        return WeightsState(**known, state="broken",
                            problem=f"{folder} is not a {package.LABEL} model folder Parallax wrote",
                            fix="choose an empty or new model folder (Parallax never replaces what it did not write)")
    try:
        layout.verify(folder)
    except ModelError as exc:
        return WeightsState(**known, state="broken", problem=exc.problem,
                            fix="download and convert the weights again, or convert the files you downloaded (the "
                                "folder is replaced only once the new one is complete)")
    return WeightsState(**known, state="verified")


def download_weights(model: str, model_dir: str | Path | None, accepted: bool, progress: Progress) -> WeightsState:
    """The engine's `download` (licences accepted, no conversion) into the download folder, then
    convert_weights from there. The model directory is checked before a byte is downloaded."""
    from ..formats.writable import check_writable
    from .download import download_geo4d, download_geometrycrafter_model

    folder, downloads = model_dir_of(model, model_dir), download_dir_of(model)
    if not accepted:
        raise InputError(f"the licences of {model_package(model).LABEL}'s weights were not accepted",
                         "read them and accept them first")
    _layout(model).check_target(folder, {"download folder": downloads})
    check_writable(folder)
    progress("downloading", 0.0)
    if model == "geo4d":
        if download_geo4d(str(downloads), str(folder), None, accepted=True, convert=False, progress=progress):
            raise ModelError("Geo4D's checkpoints could not be downloaded here (Google Drive or the network refused)",
                             f"download {' and '.join(GEO4D_FILES)} by hand (docs/models.md, 'Getting the weights') "
                             "into one folder, then convert the files from that folder")
    else:
        download_geometrycrafter_model(str(downloads), str(folder), None, None, accepted=True, convert=False,
                                       progress=progress)
    return convert_weights(model, downloads, folder, progress)


def convert_weights(model: str, source: str | Path, model_dir: str | Path | None, progress: Progress) -> WeightsState:
    """The engine's `convert` of the files in `source` (Geo4D: model.ckpt and vae.ckpt; GeometryCrafter: the hub's
    layout, <owner>/<name>/<file>) into the model directory, which is then verified."""
    source, folder = Path(source).expanduser().absolute(), model_dir_of(model, model_dir)

    def log(message: str) -> None:
        progress(f"converting: {message}", 0.0)  # the steps have no known count; a cancel lands between them

    progress("converting", 0.0)
    if model == "geo4d":
        from .geo4d.convert import convert_geo4d

        missing = [name for name in GEO4D_FILES if not (source / name).is_file()]
        if missing:
            raise InputError(f"{source} has no {' or '.join(missing)}",
                             f"choose the folder that holds Geo4D's {' and '.join(GEO4D_FILES)}")
        convert_geo4d(source / "model.ckpt", source / "vae.ckpt", folder, log=log)
    else:
        from .geometrycrafter.hub import convert_geometrycrafter

        convert_geometrycrafter(source, folder, log=log)
    progress("verifying", 0.0)
    state = check_weights(model, folder)
    if state.state != "verified":
        raise ModelError(state.problem, state.fix)
    return state


def run_weights(model: str, action: str, model_dir: str | None, source: str | None, accepted: bool,
                progress: Progress) -> WeightsState:
    """One `weights` request: action "check", "download" (then convert) or "convert" (from `source`)."""
    model_package(model)  # an unknown model is refused by name
    if action == "check":
        progress("verifying", 0.0)
        return check_weights(model, model_dir)
    if action == "download":
        return download_weights(model, model_dir, accepted, progress)
    if action != "convert":
        raise InputError(f"unknown weights action {action!r}", f"use one of {', '.join(ACTIONS)}")
    if not source:
        raise InputError("converting needs the folder of the downloaded files", "choose that folder")
    return convert_weights(model, source, model_dir, progress)
