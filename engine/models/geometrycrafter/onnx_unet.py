"""GeometryCrafter's spatio-temporal UNet as an ONNX graph, run by ONNX Runtime (CPU provider, or CUDA with
onnxruntime-gpu): the same exporter and session wrapper as Geo4D's (engine/models/geo4d/onnx_export.py,
onnx_backend.py), with this UNet's signature. `reconstruct --runtime onnx` runs the UNet so (`cached_unet_graph`);
the other networks stay in torch.

Graph `unet-<dtype>.onnx`: inputs `sample` [b, t, in_channels, h, w], `timestep` float32 [1],
`encoder_hidden_states` [b, t, D], `added_time_ids` [b, 3]; output `out` [b, t, 4, h, w]. Batch, frames and
latent size are dynamic. The feed-forward's token chunking (unet.FEED_FORWARD_TOKENS) is off in an ONNX export
(attention.FeedForward): the graph runs the tokens whole at every size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import ModelError
from ..geo4d.onnx_backend import OnnxGraph
from ..geo4d.onnx_export import GraphSignature, export_module
from ..model_dir import ONNX_CACHE
from .denoise import added_time_ids
from .unet import SpatioTemporalUNet

_NUMPY_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
_CLIP_AXES = {0: "batch", 1: "frames", 3: "height", 4: "width"}
UNET = GraphSignature(
    inputs=("sample", "timestep", "encoder_hidden_states", "added_time_ids"),
    outputs=("out",),
    dynamic_axes={"sample": _CLIP_AXES, "encoder_hidden_states": {0: "batch", 1: "frames"},
                  "added_time_ids": {0: "batch"}, "out": _CLIP_AXES},
)


class _TensorTimestep(nn.Module):
    """The UNet with its timestep as a [1] tensor input (the forward also takes python numbers)."""

    def __init__(self, unet: SpatioTemporalUNet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states, added_time_ids):
        return self.unet(sample, timestep, encoder_hidden_states, added_time_ids)


def export_unet(unet: SpatioTemporalUNet, path: str | Path, frames: int = 3, latent_size: tuple[int, int] = (8, 16)
                ) -> Path:
    """Write `unet` (its dtype becomes the graph's) to `path`, traced on small zero inputs of its device."""
    weight = unet.conv_in.weight
    lh, lw = (max(s, unet.size_multiple) for s in latent_size)
    context_dim = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_k.in_features
    args = (torch.zeros(1, frames, unet.conv_in.in_channels, lh, lw, dtype=weight.dtype, device=weight.device),
            torch.ones(1, dtype=torch.float32, device=weight.device),
            torch.zeros(1, frames, context_dim, dtype=weight.dtype, device=weight.device),
            added_time_ids(weight.device))
    return export_module(_TensorTimestep(unet), args, UNET, path)


class OnnxSpatioTemporalUNet(OnnxGraph):
    """Call like SpatioTemporalUNet.forward, the timestep a number or a [1] tensor -> out float32."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        super().__init__(path, UNET, device)
        self.path = Path(path)

    def __call__(self, sample, timestep, encoder_hidden_states, added_time_ids) -> torch.Tensor:
        timestep = torch.as_tensor(timestep, dtype=torch.float32).reshape(1)
        inputs = (sample, timestep, encoder_hidden_states, added_time_ids)
        # Each input in the graph's own type: the timestep stays float32 in a float16 graph.
        feeds = {spec.name: tensor.detach().cpu().numpy().astype(_NUMPY_DTYPES[spec.type])
                 for spec, tensor in zip(self.session.get_inputs(), inputs)}
        out = self.session.run(None, feeds)[0]
        return torch.from_numpy(out.astype(np.float32)).to(sample.device)


def cached_unet_graph(unet: SpatioTemporalUNet, model_dir: str | Path, variant: str, device: str | torch.device
                      ) -> Path:
    """The ONNX graph of the UNet of `variant` of a converted model directory, exported from the loaded `unet`
    (float32 or float16) into the directory's onnx/ cache the first time. `unet` may be moved to `device` (to
    trace it there): callers drop it before opening the graph (`OnnxSpatioTemporalUNet`), so that the torch and
    ONNX Runtime copies of the weights are never in memory together.

    The file is `unet_<variant>-<sha256>-<dtype>.onnx`, named after the weights file's sha256 in the manifest
    (which loading verified), so an export of other weights is never used; an export is written only where no
    file is, and the cache is a folder of this model directory (engine/models/model_dir.py: `extra_files`)."""
    dtype = unet.conv_in.weight.dtype
    if dtype not in (torch.float32, torch.float16):
        raise ModelError(f"the ONNX runtime runs the UNet in float32 or float16, not {dtype}",
                         "use --precision fp16 (GPU) or fp32 (CPU) with --runtime onnx, or --runtime torch")
    directory = Path(model_dir).expanduser()
    weights = f"unet_{variant}.safetensors"
    sha256 = json.loads((directory / "manifest.json").read_text())["files"][weights]["sha256"]
    cache = directory / ONNX_CACHE
    if cache.is_symlink() or (cache.exists() and not cache.is_dir()):
        raise ModelError(f"{cache} is not the folder of ONNX graphs Parallax writes there",
                         "move it out of the model directory, or use --runtime torch")
    path = cache / f"unet_{variant}-{sha256}-{str(dtype).removeprefix('torch.')}.onnx"
    if not path.is_file():
        # Traced on the compute device: a float16 UNet resting in host memory (offloading) is moved there first.
        export_unet(unet.to(device), path)
    return path
