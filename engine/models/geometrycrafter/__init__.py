"""GeometryCrafter (TencentARC, CVPR 2025): per-frame camera-space point maps from a video, with a
point-map VAE over Stable Video Diffusion and a MoGe prior. Re-implemented from the official code
(TencentARC/GeometryCrafter eb8112b, diffusers 0.31 classes) for inference; official state-dict
key names, so the released weights load with strict=True."""

from __future__ import annotations

from pathlib import Path

LABEL = "GeometryCrafter"
WINDOW_LENGTH = 110  # frames per window: the official run.py's window_size
VARIANTS = ("diff", "determ")
DEFAULT_STRIDE = 85  # run.py's window 110 less its overlap 25
# Shown by `download geometrycrafter` and the add-on's preferences, and accepted there before anything is downloaded.
LICENCES = """GeometryCrafter's weights come with these licences; read them before you accept:
  - GeometryCrafter (https://github.com/TencentARC/GeometryCrafter/blob/main/LICENSE): academic, research and
    education use only, never commercial or production use, under any circumstances.
  - Stable Video Diffusion img2vid-xt, which GeometryCrafter is fine-tuned from and whose VAE and image encoder
    it runs: the Stability AI Community License
    (https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt/blob/main/LICENSE.md).
  - MoGe (https://github.com/microsoft/MoGe): MIT licence."""
__all__ = ["DEFAULT_STRIDE", "LABEL", "LICENCES", "VARIANTS", "WINDOW_LENGTH", "load", "model_dir_layout", "size_rule"]


def load(model_dir: Path, device: str, dtype: str, runtime: str, variant: str | None = None):
    """The GeometryCrafter WindowModel of a converted model directory (model_dir.py) on `device` in `dtype`
    ("float32", "float16" or "bfloat16"; MoGe and the point-map VAE stay float32, as the official run.py
    keeps them); `variant` "diff" (default) or "determ". Runtime "torch" only."""
    from ...errors import InputError
    from .model import load_geometrycrafter

    if runtime != "torch":
        raise InputError(f"GeometryCrafter has no {runtime!r} runtime", "use --runtime torch")
    variant = variant or "diff"
    if variant not in VARIANTS:
        raise InputError(f"unknown GeometryCrafter variant {variant!r}", "use --variant diff or --variant determ")
    return load_geometrycrafter(model_dir, device, dtype, variant)


def size_rule():
    """The processing sizes (a SizeRule): multiples of 64 near 576x1024 in area, as the official run.py."""
    from .model import size_rule as rule

    return rule()


def model_dir_layout():
    """The converted model directory's layout (engine/models/model_dir.py)."""
    from .model_dir import LAYOUT

    return LAYOUT
