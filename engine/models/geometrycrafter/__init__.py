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
SIZE_MULTIPLE = 64  # the official pipelines' rule for the processing size
TRAINING_SIZE = (576, 1024)  # (H, W) of the official run.py's default (and its README's high-resolution setting)
__all__ = ["DEFAULT_STRIDE", "LABEL", "LICENCES", "SIZE_MULTIPLE", "TRAINING_SIZE", "VARIANTS", "WINDOW_LENGTH", "load",
           "memory_floor", "model_dir_layout", "size_rule"]


def size_rule(model_dir: Path | None = None):
    """The processing sizes (a SizeRule): the same for every converted model; `model_dir` (None: the released
    model) is checked to be a complete GeometryCrafter directory first, without reading the weights (ModelError)."""
    from ..window_model import SizeRule

    if model_dir is not None:
        from .model_dir import LAYOUT

        LAYOUT.read(model_dir)
    return SizeRule(SIZE_MULTIPLE, TRAINING_SIZE, LABEL)


def load(model_dir: Path, device: str, dtype: str, runtime: str, variant: str | None = None):
    """The GeometryCrafter WindowModel of a converted model directory (model_dir.py) on `device` in `dtype`
    ("float32", "float16" or "bfloat16"; MoGe and the point-map VAE stay float32, as the official run.py
    keeps them); `variant` "diff" (default) or "determ". Runtime "torch", or "onnx": the UNet run by ONNX
    Runtime (exported into the model directory on first use, onnx_unet.py), the other networks by torch."""
    from ...devices import release_freed
    from ...errors import EngineError, InputError
    from .model import load_geometrycrafter

    if runtime not in ("torch", "onnx"):
        raise InputError(f"unknown runtime {runtime!r}", "use --runtime torch or --runtime onnx")
    variant = variant or "diff"
    if variant not in VARIANTS:
        raise InputError(f"unknown GeometryCrafter variant {variant!r}", "use --variant diff or --variant determ")
    model = load_geometrycrafter(model_dir, device, dtype, variant)
    if runtime == "onnx":
        try:
            from .onnx_unet import OnnxSpatioTemporalUNet, cached_unet_graph
        except ImportError as exc:
            raise EngineError(f"the ONNX Runtime backend is not available here ({exc})",
                              "use --runtime torch, or install the engine's onnx extra (pip install onnxruntime "
                              "onnx)") from exc
        graph = cached_unet_graph(model.network.unet, model_dir, variant, device)
        # The torch UNet goes before ONNX Runtime reads its own copy of the weights: one copy at a time.
        model.network.unet = None
        release_freed(device)
        model.network.unet = OnnxSpatioTemporalUNet(graph, device)
    return model


def memory_floor(model_dir: Path, size: tuple[int, int], dtype: str, device: str, runtime: str,
                 variant: str | None = None):
    """(bytes, what they hold): a lower bound of the memory on `device` of one window at processing size (H, W),
    the model of `model_dir` loaded as `load` would with `runtime`, from its configuration and its files' headers
    before the weights load."""
    from .model import memory_floor

    return memory_floor(model_dir, size, dtype, device, runtime, variant or VARIANTS[0])


def model_dir_layout():
    """The converted model directory's layout (engine/models/model_dir.py)."""
    from .model_dir import LAYOUT

    return LAYOUT
