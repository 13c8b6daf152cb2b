"""ONNX Runtime as the second runtime for the Geo4D UNet (the network that runs 5 times per window).

`OnnxUNet` runs a graph written by onnx_export.export_unet with the CUDA execution provider on a GPU
(onnxruntime-gpu) or the CPU one. `OnnxBackend` puts it behind the window-inference backend calls
(encode / denoise / decode): denoise goes through ONNX Runtime, the VAE calls stay with the torch
backend. The UNet is exported once per model directory and dtype (`unet_onnx_for`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import ModelError
from .onnx_export import INPUT_NAMES, export_unet

_NUMPY_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def execution_providers(device: str | torch.device) -> list[str]:
    """ONNX Runtime providers for a torch device name: CUDA (with CPU fallback for unsupported
    nodes) on "cuda", CPU otherwise."""
    import onnxruntime

    if torch.device(device).type != "cuda":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise ModelError("the ONNX runtime was asked to use the GPU, but this onnxruntime has no CUDA provider",
                         "pip install onnxruntime-gpu (matching your CUDA), or use --device cpu / --runtime torch")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


class OnnxUNet:
    """An exported UNet in an ONNX Runtime session. Call like UNet3D.forward:
    x [b, 20, t, h, w], timesteps [b] int64, context [b, 77 + 16t, C], fs [b] int64 -> v [b, 16, t, h, w]
    as a float32 tensor on x's device."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"the ONNX UNet {path} does not exist", "export it with engine.runtime.onnx_export")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # the CUDA provider logs every CPU-placed shape node otherwise
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=execution_providers(device))
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"ONNX Runtime cannot load {path} ({str(exc).splitlines()[0]})",
                             "delete the file so that it is exported again") from exc
        names = [i.name for i in self.session.get_inputs()]
        if names != INPUT_NAMES:
            raise ModelError(f"{path} has inputs {names}, not the UNet's {INPUT_NAMES}",
                             "delete the file so that it is exported again")
        self.float_dtype = _NUMPY_DTYPES[self.session.get_inputs()[0].type]

    def __call__(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                 fs: torch.Tensor) -> torch.Tensor:
        feeds = {
            "x": x.detach().cpu().numpy().astype(self.float_dtype),
            "timesteps": timesteps.detach().cpu().numpy().astype(np.int64),
            "context": context.detach().cpu().numpy().astype(self.float_dtype),
            "fs": fs.detach().cpu().numpy().astype(np.int64),
        }
        [v] = self.session.run(None, feeds)
        return torch.from_numpy(v.astype(np.float32)).to(x.device)


class OnnxBackend:
    """Window-inference backend (the calls of models.geo4d.model.TorchBackend) of a loaded Geo4D
    model (weights.Geo4DModules) whose denoise runs in ONNX Runtime; encode and decode stay in torch.

    The UNet is exported in its loaded dtype (float32 for the CPU provider, float16 for CUDA) to
    `cache_dir` (default: the model directory's `onnx/`) the first time."""

    def __init__(self, modules, device: str | torch.device = "cpu", cache_dir: str | Path | None = None):
        from ..models.geo4d.model import TorchBackend

        directory = Path(modules.directory)
        path = unet_onnx_for(modules.unet, directory / "unet.safetensors", cache_dir or directory / "onnx")
        self.unet = OnnxUNet(path, device)
        self.torch_backend = TorchBackend(modules)

    def encode(self, video: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.torch_backend.encode(video, noise)

    def denoise(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, fs: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, context, fs)

    def decode(self, latent: torch.Tensor):
        return self.torch_backend.decode(latent)


def unet_onnx_for(unet: torch.nn.Module, weights_file: str | Path, cache_dir: str | Path) -> Path:
    """The ONNX file of `unet` (loaded from `weights_file`) in `cache_dir`, exported on first use.

    The file is named after the UNet's dtype and stamped with the weights file's size and
    modification time, so converting the model again makes it export again."""
    weights_file = Path(weights_file)
    dtype = next(unet.parameters()).dtype
    if dtype not in (torch.float32, torch.float16):
        raise ModelError(f"the ONNX runtime runs the UNet in float32 or float16, not {dtype}",
                         "use --precision fp16 (GPU) or fp32 (CPU) with --runtime onnx, or --runtime torch")
    dtype = str(dtype).removeprefix("torch.")
    path = Path(cache_dir) / f"unet-{dtype}.onnx"
    stamp_path = path.with_suffix(".json")
    stat = weights_file.stat()
    stamp = {"weights": weights_file.name, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if path.is_file() and stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
        return path
    export_unet(unet, path)
    stamp_path.write_text(json.dumps(stamp))
    return path

