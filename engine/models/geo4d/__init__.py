"""Geo4D: the video-diffusion model of point maps, rays and disparity, its weights, conversion and checks."""

from __future__ import annotations

from pathlib import Path

from ...windows.schedule import WINDOW_LENGTH

LABEL = "Geo4D"
DEFAULT_STRIDE = 4  # frames between window starts
# Shown by `download geo4d` and the add-on's preferences, and accepted there before anything is downloaded.
LICENCES = """Geo4D's weights come with these licences; read them before you accept:
  - Geo4D (https://github.com/jzr99/Geo4D): the repository publishes no licence file; the weights are released
    for research. Check the repository for the current terms before any commercial use.
  - DynamiCrafter (https://github.com/Doubiiu/DynamiCrafter), which Geo4D is fine-tuned from: Apache-2.0, with
    the terms of its third-party components below.
  - The Stable Diffusion VAE it runs (via DynamiCrafter / Stable Diffusion 2.1): CreativeML Open RAIL++-M, with its
    use restrictions.
  - OpenCLIP ViT-H-14 (LAION-2B; used only at conversion, to compute the fixed context): MIT licence."""
__all__ = ["DEFAULT_STRIDE", "LABEL", "LICENCES", "WINDOW_LENGTH", "load", "memory_floor",
           "model_dir_layout", "size_rule"]


def size_rule(model_dir: Path | None = None):
    """The processing sizes (a SizeRule) of the converted model in `model_dir`, from its config.json without
    reading the weights (ModelError when it is no complete Geo4D directory); None: the released model's."""
    from .config import load_config
    from .config import size_rule as config_size_rule

    if model_dir is None:
        return config_size_rule(load_config())
    from .model_dir import LAYOUT

    return config_size_rule(LAYOUT.read(model_dir)["config"])


def load(model_dir: Path, device: str, dtype: str, runtime: str):
    """The Geo4D WindowModel of a converted model directory, on `device` ("cpu", "cuda", "cuda:1") in `dtype`
    ("float32", "float16" or "bfloat16"), its networks run by `runtime` ("torch" or "onnx")."""
    import torch

    from ...devices import release_freed
    from ...errors import EngineError, InputError
    from .model import Geo4D
    from .weights import load_geo4d

    modules = load_geo4d(model_dir, device, getattr(torch, dtype))
    if runtime == "torch":
        return Geo4D.from_modules(modules, device)
    if runtime != "onnx":
        raise InputError(f"unknown runtime {runtime!r}", "use --runtime torch or --runtime onnx")
    try:
        from .onnx_backend import OnnxBackend, export_graphs
    except ImportError as exc:
        raise EngineError(f"the ONNX Runtime backend is not available here ({exc})",
                          "use --runtime torch, or install the engine's onnx extra (pip install onnxruntime onnx)"
                          ) from exc
    graphs = export_graphs(modules)
    config, context = modules.config, modules.context
    # The torch networks go before ONNX Runtime reads its own copy of the weights: peak memory is one copy.
    del modules
    release_freed(device)
    return Geo4D(OnnxBackend(graphs, config, device), config, context, device)


def memory_floor(model_dir: Path, size: tuple[int, int], dtype: str, device: str, runtime: str):
    """(bytes, what they hold): a lower bound of the memory of one window at processing size (H, W) in `dtype`
    ("float32", "float16", "bfloat16"), from the configuration of `model_dir` before the weights load. The same for
    either `runtime`: ONNX Runtime's graphs hold the same weights on the device as the torch networks."""
    from .model import memory_floor
    from .model_dir import LAYOUT

    return memory_floor(LAYOUT.read(model_dir)["config"], size, dtype, device)


def model_dir_layout():
    """The converted model directory's layout (engine/models/model_dir.py)."""
    from .model_dir import LAYOUT

    return LAYOUT
