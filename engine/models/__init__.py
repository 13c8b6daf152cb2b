"""The geometry models, by name: adding a model is one folder here and one line in MODELS.

A model's package defines, without importing torch at import time: LABEL (its name for the artist),
WINDOW_LENGTH (frames per window), DEFAULT_STRIDE (frames between window starts), VARIANTS where it has
several (the first the default), `size_rule(model_dir)`, the processing sizes of a converted model directory (a
SizeRule) read without its weights (None: the released model's), `model_dir_layout()` (its converted
directory's ModelDirLayout), `memory_floor(model_dir, size, precision, device, runtime[, variant]) -> (bytes,
what)`, a lower bound of one window's memory read without the weights (the pipeline refuses a size that cannot
fit before loading), and `load(model_dir, device, precision, runtime[, variant]) -> WindowModel`
(engine/models/window_model.py).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

from ..errors import InputError

MODELS = {
    "geo4d": ".geo4d",
    "geometrycrafter": ".geometrycrafter",
}
DEFAULT_MODEL = "geo4d"
DEFAULT_MODEL_ROOT = Path("~/.cache/parallax/models")
MODEL_DIR_ENV = "PARALLAX_MODEL_DIR"


def model_package(name: str) -> ModuleType:
    """The package of model `name` (cheap: its LABEL, WINDOW_LENGTH and `load`); InputError for an unknown name."""
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}", f"use --model {' or --model '.join(MODELS)}")
    return importlib.import_module(MODELS[name], __name__)


def size_rule(name: str, model_dir: Path | None = None):
    """The processing sizes (engine.models.window_model.SizeRule) model `name` accepts: those of the converted
    model in `model_dir`, read before its weights load (ModelError when it is no complete model directory), or
    of the released model (None)."""
    return model_package(name).size_rule(model_dir)


def size_text() -> str:
    """The released models' processing-size rules, for help texts: 'multiples of 64 (Geo4D, GeometryCrafter)'."""
    models: dict[int, list[str]] = {}
    for name in MODELS:
        models.setdefault(size_rule(name).multiple, []).append(model_package(name).LABEL)
    return "multiples of " + ", ".join(f"{multiple} ({', '.join(labels)})" for multiple, labels in models.items())


def default_model_dir(name: str = "geo4d") -> Path:
    """$PARALLAX_MODEL_DIR, else ~/.cache/parallax/models/<name>."""
    env = os.environ.get(MODEL_DIR_ENV)
    return Path(env).expanduser() if env else (DEFAULT_MODEL_ROOT / name).expanduser()
