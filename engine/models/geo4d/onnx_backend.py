"""ONNX Runtime as the second runtime for Geo4D: the UNet and the VAE parts as ONNX graphs (see
onnx_export.py), run with the CUDA execution provider on a GPU (onnxruntime-gpu) or the CPU one.

`OnnxBackend(export_graphs(modules), config, device)` gives the window-inference backend calls (encode /
denoise / decode, as models.geo4d.model.TorchBackend) for a loaded Geo4D model. Its graphs are exported
once per model directory and dtype (`cached_export`) into the directory's `onnx/` folder.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ...errors import ModelError
from .device_choices import choices_for
from .model import VaeBackend
from .model_dir import ONNX_CACHE
from .vae import Posterior
from . import onnx_export

_NUMPY_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}

# Graph name -> (exporter, signature, weights file of the converted model directory).
GRAPHS = {
    "unet": (onnx_export.export_unet, onnx_export.UNET, "unet.safetensors"),
    "vae-encoder": (onnx_export.export_vae_encoder, onnx_export.VAE_ENCODER, "vae.safetensors"),
    "vae-decoder": (onnx_export.export_vae_decoder, onnx_export.VAE_DECODER, "vae.safetensors"),
    "pointmap-decoder": (partial(onnx_export.export_vae_decoder, with_confidence=True), onnx_export.VAE_DECODER,
                         "pointmap_vae.safetensors"),
}


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


class OnnxGraph:
    """One exported graph in an ONNX Runtime session. Called with torch tensors in the signature's
    input order; returns float32 torch tensors on the first input's device."""

    def __init__(self, path: str | Path, signature: onnx_export.GraphSignature, device: str | torch.device = "cpu"):
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"the ONNX graph {path} does not exist", "export it with engine.models.geo4d.onnx_export")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # the CUDA provider logs every CPU-placed shape node otherwise
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=execution_providers(device))
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"ONNX Runtime cannot load {path} ({str(exc).splitlines()[0]})",
                             "delete the file so that it is exported again") from exc
        inputs = self.session.get_inputs()
        if tuple(i.name for i in inputs) != signature.inputs:
            raise ModelError(f"{path} has inputs {[i.name for i in inputs]}, not {list(signature.inputs)}",
                             "delete the file so that it is exported again")
        self.float_dtype = _NUMPY_DTYPES[inputs[0].type]
        self.names = signature.inputs

    def __call__(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        feeds = {}
        for name, tensor in zip(self.names, tensors):
            array = tensor.detach().cpu().numpy()
            feeds[name] = array.astype(np.int64 if tensor.dtype == torch.int64 else self.float_dtype)
        return [torch.from_numpy(out.astype(np.float32)).to(tensors[0].device) for out in self.session.run(None, feeds)]


class OnnxUNet(OnnxGraph):
    """Call like UNet3D.forward: x [b, 20, t, h, w], timesteps [b] int64, context [b, 77 + 16t, C],
    fs [b] int64 -> v [b, 16, t, h, w] float32."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        super().__init__(path, onnx_export.UNET, device)

    def __call__(self, x, timesteps, context, fs) -> torch.Tensor:
        return super().__call__(x, timesteps, context, fs)[0]


class OnnxVAE:
    """The VAE calls that vae.encode_frames / vae.decode_frames make, served by ONNX graphs (either
    graph may be None when that direction is not needed)."""

    def __init__(self, encoder: OnnxGraph | None, decoder: OnnxGraph | None, with_confidence: bool):
        self.encoder = encoder
        self.decoder = decoder
        self.with_confidence = with_confidence
        self.dtype = torch.float32  # inputs are cast to the graph's dtype in OnnxGraph

    def encode(self, images: torch.Tensor) -> Posterior:
        mean, logvar = self.encoder(images)
        return Posterior(mean, logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)[0]

    def decode_with_confidence(self, z: torch.Tensor) -> torch.Tensor:
        if not self.with_confidence:
            raise ValueError("this VAE graph was exported without the confidence adaptor")
        return self.decoder(z)[0]


def export_graphs(modules, cache_dir: str | Path | None = None) -> dict[str, Path]:
    """The four graphs (GRAPHS' names -> files) of a loaded Geo4D model (weights.Geo4DModules), exported in
    the modules' dtype (float32 for the CPU provider, float16 for CUDA) to `cache_dir` (default: the
    model directory's `onnx/`) the first time."""
    directory = Path(modules.directory)
    cache_dir = Path(cache_dir) if cache_dir else directory / ONNX_CACHE
    networks = {"unet": modules.unet, "vae-encoder": modules.vae, "vae-decoder": modules.vae,
                "pointmap-decoder": modules.pointmap_vae}
    return {name: cached_export(name, module, directory, cache_dir) for name, module in networks.items()}


class OnnxBackend(VaeBackend):
    """Window-inference backend running every Geo4D network in ONNX Runtime, from the graph files of
    `export_graphs`. It holds no torch network: callers drop theirs before building it, so the torch and
    ONNX Runtime copies of the weights are never in memory together."""

    def __init__(self, graphs: dict[str, Path], config: dict, device: str | torch.device = "cpu"):
        def graph(name: str) -> OnnxGraph:
            return OnnxGraph(graphs[name], GRAPHS[name][1], device)

        self.unet = OnnxUNet(graphs["unet"], device)
        vae = OnnxVAE(graph("vae-encoder"), graph("vae-decoder"), with_confidence=False)
        pointmap_vae = OnnxVAE(None, graph("pointmap-decoder"), with_confidence=True)
        # The graphs take plain float32 / float16 arrays: no channels-last layout to choose.
        super().__init__(vae, pointmap_vae, config, replace(choices_for(device), channels_last=False))

    def prepare_context(self, context: torch.Tensor, frames: int) -> torch.Tensor:
        """The tokens as they are: the UNet graph projects them in every call."""
        return context

    def denoise(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, fs: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, context.expand(x.shape[0], -1, -1), fs)


def cached_export(name: str, module: torch.nn.Module, model_dir: str | Path, cache_dir: str | Path) -> Path:
    """The ONNX file of graph `name` (a key of GRAPHS) of `module` in `cache_dir`, exported on first use.

    The file is named after the graph and the module's dtype and stamped with the size and time of
    the weights file it was loaded from, so converting the model again makes it export again."""
    exporter, _, weights_name = GRAPHS[name]
    dtype = next(module.parameters()).dtype
    if dtype not in (torch.float32, torch.float16):
        raise ModelError(f"the ONNX runtime runs the networks in float32 or float16, not {dtype}",
                         "use --precision fp16 (GPU) or fp32 (CPU) with --runtime onnx, or --runtime torch")
    path = Path(cache_dir) / f"{name}-{str(dtype).removeprefix('torch.')}.onnx"
    stamp_path = path.with_suffix(".json")
    weights_file = Path(model_dir) / weights_name
    if not weights_file.is_file():
        raise ModelError(f"{weights_file} is missing: the ONNX graphs are cached per converted model file",
                         "load the model from a converted model directory (python -m engine convert geo4d ...)")
    stat = weights_file.stat()
    stamp = {"weights": weights_name, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if path.is_file() and stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
        return path
    exporter(module, path)
    stamp_path.write_text(json.dumps(stamp))
    return path
