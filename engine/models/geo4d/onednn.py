"""The UNet's linear layers and convolutions on oneDNN's prepacked weights: CPU float32 device choices
(device_choices.DeviceChoices.linear_kernel and conv_kernel).

On the CPU torch runs `nn.Linear` through MKL's sgemm, which on the machine of docs/runtimes.md reaches
80-190 GFLOP/s on the UNet's shapes; oneDNN with its weights reordered once into its blocked layout
reaches 208-221. torch's convolutions run on oneDNN already, but reorder the plain weight into oneDNN's
layout at every call: on the UNet's small deep maps (1280 channels on 2x4 or 1x2 at 64x128 frames) that
reorder is most of the call (22 ms of a 1280 -> 1280 3x3 conv on 16 frames of 1x2, 4 ms packed).
`use_linear_kernel` and `use_conv_kernel` swap each layer for one holding only the packed weight (one
copy of the weights, as before); results equal torch's up to float rounding.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

# Rows the linear weights are packed for, and the input shapes (less the channels) the convolutions' are
# packed for: 16 frames of 8x8, [n, h, w] for 2-D, [b, t, h, w] for 3-D (oneDNN's layout choice; any input runs).
BATCH_HINT = 128
CONV_INPUT_HINT = {2: (16, 8, 8), 3: (1, 16, 8, 8)}


LINEAR_OPS = ("_reorder_linear_weight", "_linear_pointwise")
CONV_OPS = ("_reorder_convolution_weight", "_convolution_pointwise")


def onednn_available(ops: tuple[str, ...] = LINEAR_OPS + CONV_OPS) -> bool:
    """Whether this torch has oneDNN and these (private) prepacked-layer ops (default: all we use)."""
    return torch.backends.mkldnn.is_available() and all(hasattr(torch.ops.mkldnn, op) for op in ops)


class _PackedLayer(nn.Module):
    """A layer holding oneDNN's packed `weight` (and a plain `bias`) whose state dict gives the plain weight under
    the same key, so its keys and values are those of the torch layer it replaced."""

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        destination[prefix + "weight"] = self.weight.to_dense()
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias


class OneDnnLinear(_PackedLayer):
    """An inference-only `nn.Linear` whose weight oneDNN has packed."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), BATCH_HINT))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")

    def plain(self) -> nn.Linear:
        """The `nn.Linear` of these weights (unpacked)."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        return _with_weights(linear, self.weight.to_dense(), self.bias)


class OneDnnConv(_PackedLayer):
    """An inference-only `nn.Conv2d` or `nn.Conv3d` (zero padding, a kernel larger than 1x1) whose weight
    oneDNN has packed, so no call reorders it."""

    def __init__(self, conv: nn.Conv2d | nn.Conv3d):
        super().__init__()
        self.conv_type = type(conv)
        self.in_channels, self.out_channels, self.kernel_size = conv.in_channels, conv.out_channels, conv.kernel_size
        self.stride, self.padding = list(conv.stride), list(conv.padding)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        batch, *sides = CONV_INPUT_HINT[len(conv.kernel_size)]
        self.register_buffer("weight", torch.ops.mkldnn._reorder_convolution_weight(
            conv.weight.detach(), self.padding, self.stride, self.dilation, self.groups,
            [batch, conv.in_channels, *sides]))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach())

    @staticmethod
    def packs(layer: nn.Module) -> bool:
        """Whether `layer` is a convolution this class replaces: 2-D or 3-D, zero padding given as sizes, a
        kernel larger than 1x1 (a 1x1 convolution is packed for one input shape, and reordered again at
        every call on others: 16-45x its time on the UNet's 2x4 and 1x2 maps)."""
        return type(layer) in (nn.Conv2d, nn.Conv3d) and layer.padding_mode == "zeros" \
            and not isinstance(layer.padding, str) and math.prod(layer.kernel_size) > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, self.padding, self.stride,
                                                       self.dilation, self.groups, "none", [], "")

    def plain(self) -> nn.Conv2d | nn.Conv3d:
        """The torch convolution of these weights (unpacked)."""
        conv = self.conv_type(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                              self.dilation, self.groups, bias=self.bias is not None, device="meta")
        return _with_weights(conv, self.weight.to_dense(), self.bias)


def use_linear_kernel(module: nn.Module, kernel: str) -> str:
    """Run `module`'s linear layers with `kernel` ("mkl": torch's own, a OneDnnLinear unpacked again; "onednn":
    OneDnnLinear) and return the kernel they now use: "onednn" only for float32 on the CPU with a torch that
    has the ops, else "mkl". The layers are swapped one at a time, each plain weight released as
    its packed copy is made, so the weights are never held twice."""
    if kernel not in ("mkl", "onednn"):
        raise ValueError(f"unknown linear kernel {kernel!r}")
    return _use(module, kernel == "onednn", OneDnnLinear, lambda layer: type(layer) is nn.Linear, LINEAR_OPS,
                ("onednn", "mkl"))


def use_conv_kernel(module: nn.Module, kernel: str) -> str:
    """Run `module`'s 2-D and 3-D convolutions with `kernel` ("torch": torch's own, a OneDnnConv unpacked
    again; "onednn": OneDnnConv, which reorders each weight once instead of at every call) and return the
    kernel they now use, as use_linear_kernel does ("onednn" only for float32 on the CPU)."""
    if kernel not in ("torch", "onednn"):
        raise ValueError(f"unknown convolution kernel {kernel!r}")
    return _use(module, kernel == "onednn", OneDnnConv, OneDnnConv.packs, CONV_OPS, ("onednn", "torch"))


def use_plain_layers(module: nn.Module) -> None:
    """torch's own linear layers and convolutions in `module` again (the ONNX exporter knows no oneDNN op)."""
    use_linear_kernel(module, "mkl")
    use_conv_kernel(module, "torch")


def _use(module: nn.Module, packed: bool, packed_type: type, packs: Callable[[nn.Module], bool],
         ops: tuple[str, ...], names: tuple[str, str]) -> str:
    """Swap `module`'s layers for `packed_type` (those `packs` accepts) or back; returns the name in effect of
    `names` (packed, plain)."""
    packed_name, plain_name = names
    if not packed:
        _swap(module, lambda layer: isinstance(layer, packed_type), lambda layer: layer.plain())
        return plain_name
    weight = next(module.parameters())
    if weight.device.type != "cpu" or weight.dtype != torch.float32 or not onednn_available(ops):
        return plain_name
    _swap(module, packs, packed_type)
    return packed_name


def _swap(module: nn.Module, chosen: Callable[[nn.Module], bool], replacement: Callable[[nn.Module], nn.Module]):
    """Replace each child of `module` (at any depth) for which `chosen` holds by `replacement(child)`."""
    # Only names are listed ahead, so no list keeps a replaced layer (and its weight) alive.
    parents = [m for m in module.modules() if not chosen(m)]
    for parent in parents:
        for name in [name for name, child in parent.named_children() if chosen(child)]:
            setattr(parent, name, replacement(getattr(parent, name)))


def _with_weights(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    layer.weight = nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        layer.bias = nn.Parameter(bias, requires_grad=False)
    return layer
