"""The UNet's linear layers on oneDNN's prepacked weights: a CPU float32 device choice
(device_choices.DeviceChoices.linear_kernel).

On the CPU torch runs `nn.Linear` through MKL's sgemm, which on the machine of docs/runtimes.md reaches
80-190 GFLOP/s on the UNet's shapes; oneDNN with its weights reordered once into its blocked layout
reaches 208-221. `use_linear_kernel` swaps each layer for a `OneDnnLinear` holding only the packed
weight (one copy of the weights, as before); results equal torch's up to float rounding.
"""

from __future__ import annotations

import torch
from torch import nn

# Rows the weights are packed for (oneDNN's layout choice; any row count runs).
BATCH_HINT = 128


def onednn_available() -> bool:
    """Whether this torch has oneDNN and the (private) prepacked-linear ops."""
    return torch.backends.mkldnn.is_available() and all(
        hasattr(torch.ops.mkldnn, op) for op in ("_reorder_linear_weight", "_linear_pointwise"))


class OneDnnLinear(nn.Module):
    """An inference-only `nn.Linear` whose weight oneDNN has packed. `state_dict` gives the plain weight
    under the same key, so the module's keys and values are those of the layer it replaced."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), BATCH_HINT))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        destination[prefix + "weight"] = self.weight.to_dense()
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias


def use_linear_kernel(module: nn.Module, kernel: str) -> str:
    """Run `module`'s linear layers with `kernel` ("mkl": torch's own, a OneDnnLinear unpacked again; "onednn":
    OneDnnLinear) and return the kernel they now use: "onednn" only for float32 on the CPU with a torch that
    has the ops, else "mkl". The layers are swapped one at a time, each plain weight released as
    its packed copy is made, so the weights are never held twice."""
    if kernel not in ("mkl", "onednn"):
        raise ValueError(f"unknown linear kernel {kernel!r}")
    if kernel == "mkl":  # torch's own layers again (the ONNX exporter knows no oneDNN op)
        for parent in [m for m in module.modules() if not isinstance(m, OneDnnLinear)]:
            for name in [name for name, child in parent.named_children() if isinstance(child, OneDnnLinear)]:
                setattr(parent, name, _plain(getattr(parent, name)))
        return "mkl"
    weight = next(module.parameters())
    if weight.device.type != "cpu" or weight.dtype != torch.float32 or not onednn_available():
        return "mkl"
    # Only names are listed ahead, so no list keeps a replaced layer (and its plain weight) alive.
    parents = [m for m in module.modules() if type(m) is not nn.Linear]
    for parent in parents:
        for name in [name for name, child in parent.named_children() if type(child) is nn.Linear]:
            setattr(parent, name, OneDnnLinear(getattr(parent, name)))
    return "onednn"


def _plain(layer: OneDnnLinear) -> nn.Linear:
    """The `nn.Linear` of a OneDnnLinear's weights (unpacked)."""
    linear = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, device="meta")
    linear.weight = nn.Parameter(layer.weight.to_dense(), requires_grad=False)
    if layer.bias is not None:
        linear.bias = nn.Parameter(layer.bias, requires_grad=False)
    return linear
