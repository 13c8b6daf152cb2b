"""Export the Geo4D networks to ONNX, for the ONNX Runtime backend (onnx_backend.py).

Four graphs, all with dynamic batch / frame count / spatial size ("float" is the dtype the module
was exported in: float32, or float16 for the CUDA execution provider):

  unet              x float[b, 20, t, h, w], timesteps int64[b],
                    context float[b, 77 + 16t, C] (the per-frame layout; the graph always splits it),
                    fs int64[b]                               -> v float[b, 16, t, h, w]
  vae-encoder       images float[n, 3, H, W] in [-1, 1]       -> mean, logvar float[n, 4, H/8, W/8]
  vae-decoder       z float[n, 4, h, w] (unscaled latent)     -> image float[n, 3, 8h, 8w]
  pointmap-decoder  z float[n, 4, h, w] (unscaled latent)     -> image float[n, 4, 8h, 8w]
                                                                 (xyz, raw uncertainty)

The TorchScript-based exporter is used (`dynamo=False`): it needs no extra dependency and handles
models over 2 GB (weights go to one external-data file next to the .onnx).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from ...errors import ModelError
from .attention import TEXT_TOKENS
from .onednn import use_plain_layers
from .unet import IMAGE_TOKENS_PER_FRAME, UNet3D

OPSET = 17
_IMAGE_AXES = {0: "n", 2: "height", 3: "width"}
# The gathered weights file: tensors of _ALIGN_ABOVE bytes and more start at a multiple of _ALIGNMENT
# (as onnx >= 1.18 writes them); bytes are copied _CHUNK at a time.
_ALIGNMENT = 64 * 1024
_ALIGN_ABOVE = 1024 * 1024
_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class GraphSignature:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic_axes: dict


UNET = GraphSignature(
    inputs=("x", "timesteps", "context", "fs"),
    outputs=("v",),
    dynamic_axes={
        "x": {0: "batch", 2: "frames", 3: "height", 4: "width"},
        "timesteps": {0: "batch"},
        "context": {0: "batch", 1: "context_tokens"},
        "fs": {0: "batch"},
        "v": {0: "batch", 2: "frames", 3: "height", 4: "width"},
    },
)
VAE_ENCODER = GraphSignature(("images",), ("mean", "logvar"),
                             {"images": _IMAGE_AXES, "mean": _IMAGE_AXES, "logvar": _IMAGE_AXES})
VAE_DECODER = GraphSignature(("z",), ("image",), {"z": _IMAGE_AXES, "image": _IMAGE_AXES})


class VaeEncoder(nn.Module):
    """AutoencoderKL.encode as a graph: images -> the posterior's mean and (clamped) logvar."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        posterior = self.vae.encode(images)
        return posterior.mean, posterior.logvar


class VaeDecoder(nn.Module):
    """AutoencoderKL.decode (or decode_with_confidence, for the point-map VAE) as a graph."""

    def __init__(self, vae: nn.Module, with_confidence: bool):
        super().__init__()
        self.vae = vae
        self.with_confidence = with_confidence

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode_with_confidence(z) if self.with_confidence else self.vae.decode(z)


def _weight(module: nn.Module) -> torch.Tensor:
    return next(module.parameters())


def unet_example_inputs(unet: UNet3D, frames: int = 4, latent_size: tuple[int, int] = (8, 8)) -> tuple:
    """Small inputs for tracing, on the UNet's device and in its dtype (values do not matter; the
    sizes are dynamic in the graph)."""
    weight = _weight(unet)
    h, w = latent_size
    return (
        torch.zeros(1, unet.in_channels, frames, h, w, dtype=weight.dtype, device=weight.device),
        torch.zeros(1, dtype=torch.int64, device=weight.device),
        torch.zeros(1, TEXT_TOKENS + IMAGE_TOKENS_PER_FRAME * frames, unet.context_dim, dtype=weight.dtype,
                    device=weight.device),
        torch.full((1,), 24, dtype=torch.int64, device=weight.device),
    )


def export_unet(unet: UNet3D, path: str | Path) -> Path:
    """Write `unet` (its dtype becomes the graph's) to `path`; see export_module."""
    return export_module(unet, unet_example_inputs(unet), UNET, path)


def export_vae_encoder(vae: nn.Module, path: str | Path) -> Path:
    weight = _weight(vae)
    images = torch.zeros(1, vae.encoder.conv_in.in_channels, 64, 64, dtype=weight.dtype, device=weight.device)
    return export_module(VaeEncoder(vae), (images,), VAE_ENCODER, path)


def export_vae_decoder(vae: nn.Module, path: str | Path, with_confidence: bool = False) -> Path:
    weight = _weight(vae)
    z = torch.zeros(1, vae.post_quant_conv.in_channels, 8, 8, dtype=weight.dtype, device=weight.device)
    return export_module(VaeDecoder(vae, with_confidence), (z,), VAE_DECODER, path)


def export_module(module: nn.Module, args: tuple, signature: GraphSignature, path: str | Path) -> Path:
    """Trace `module` (eval mode) on `args` and write the graph to `path`.

    The file appears only when the export is complete (written in a temporary folder, then moved),
    so an interrupted export leaves nothing behind."""
    path = Path(path)
    module = module.eval()
    use_plain_layers(module)  # a module the torch backend packed (onednn.py) is traced with torch's layers
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch_dir = tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-")
    except OSError as exc:
        raise ModelError(f"cannot write the ONNX export to {path.parent} ({exc.strerror})",
                         "make that folder writable, or use --runtime torch") from exc
    with scratch_dir as scratch:
        traced = Path(scratch) / "traced" / path.name
        traced.parent.mkdir()
        with torch.no_grad(), warnings.catch_warnings():
            # Shape tests (the UNet's context layout) are meant to be fixed by the trace.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", "Constant folding", UserWarning)
            try:
                torch.onnx.export(module, args, str(traced), dynamo=False, opset_version=OPSET,
                                  input_names=list(signature.inputs), output_names=list(signature.outputs),
                                  dynamic_axes=signature.dynamic_axes)
            except Exception as exc:
                raise ModelError(f"exporting {path.stem} to ONNX failed ({type(exc).__name__}: {exc})",
                                 "use --runtime torch, or update torch / onnx") from exc
        final = Path(scratch) / path.name
        data_name = f"{path.name}.data"
        # Over 2 GB the exporter writes one external file per tensor; gather them into one file.
        large = len(list(traced.parent.iterdir())) > 1
        if large:
            gather_external_data(traced, final, data_name)
            shutil.move(str(final.with_name(data_name)), path.parent / data_name)
        else:
            final = traced
        shutil.move(str(final), path)
    return path


def _graph_tensors(graph: onnx.GraphProto):
    """Every tensor of `graph` that can hold weights: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _graph_tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _graph_tensors(subgraph)


def gather_external_data(source: Path, target: Path, data_name: str) -> None:
    """Write the graph `source`, whose tensors live in external files beside it (any number, e.g. one
    per tensor), as `target` with every tensor in the one file `data_name` beside `target`.

    Streams: the graph is read without its weights and each tensor's bytes are copied file to file, so
    the weights are never held in memory (onnx.load + save_model held a second full copy of them, 6 GB
    for the float32 Geo4D UNet). Each source file is deleted once copied (they are the export's own
    scratch files), so the disk holds about one copy too. Tensors of 1 MiB and more start at a
    multiple of 64 KiB, where ONNX Runtime can map them from the file instead of reading them."""
    model = onnx.load(str(source), load_external_data=False)
    copied: set[Path] = set()
    with open(target.with_name(data_name), "wb") as data:
        for tensor in _graph_tensors(model.graph):
            if tensor.data_location != onnx.TensorProto.EXTERNAL:
                continue
            info = {entry.key: entry.value for entry in tensor.external_data}
            part = source.parent / info["location"]
            offset = int(info.get("offset", 0))
            length = int(info["length"]) if "length" in info else part.stat().st_size - offset
            if length >= _ALIGN_ABOVE:
                data.write(b"\0" * (-data.tell() % _ALIGNMENT))
            start = data.tell()
            with open(part, "rb") as stream:
                stream.seek(offset)
                _copy_bytes(stream, data, length, part)
            copied.add(part)
            del tensor.external_data[:]
            for key, value in (("location", data_name), ("offset", start), ("length", length)):
                tensor.external_data.add(key=key, value=str(value))
    for part in copied:
        part.unlink()
    target.write_bytes(model.SerializeToString())


def _copy_bytes(stream, data, length: int, part: Path) -> None:
    while length > 0:
        chunk = stream.read(min(length, _CHUNK))
        if not chunk:
            raise ModelError(f"the ONNX exporter's weights file {part.name} is shorter than its graph says",
                             "export again, or use --runtime torch")
        data.write(chunk)
        length -= len(chunk)
