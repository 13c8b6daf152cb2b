"""How the Geo4D networks run on each kind of device: one table, chosen from measurements.

`python -m engine.bench model --choices` measures every alternative on the device it runs on
(VAE frames per call, memory layout, attention layout, threads, torch.compile, the decoder's Upsample, the
UNet's linear and convolution kernels) and
marks the chosen one; the figures and the machine they came from are in docs/runtimes.md. The VAE calls
(vae.encode_frames / decode_frames) and the backends take their defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceChoices:
    """Runtime choices that leave the results unchanged up to float rounding."""

    encode_chunk: int       # frames per VAE encoder call
    decode_chunk: int       # frames per VAE decoder call
    channels_last: bool     # VAE convolutions on channels-last tensors (oneDNN's fast layout on the CPU)
    threads: int | None     # torch intra-op threads; None = torch's default (one per physical core)
    compile_vae: bool = False  # TorchBackend: the VAEs through torch.compile (inductor; vae.compile_vae)
    upsample: str = "nearest_conv"  # VAE decoder's nearest x2 + 3x3 conv: as written or "phase_conv" (blocks.Upsample)
    # TorchBackend, float32 on the CPU: the UNet's linear layers through "mkl" (torch's own) or "onednn"
    # (oneDNN's prepacked weights, onednn.py), and its convolutions through "torch" or "onednn" (the same).
    linear_kernel: str = "mkl"
    conv_kernel: str = "torch"


CHOICES = {
    # Measured on a 2-core AMD EPYC (Zen 4), full-size VAEs at 64x128 (docs/runtimes.md).
    "cpu": DeviceChoices(encode_chunk=8, decode_chunk=8, channels_last=True, threads=None, upsample="phase_conv",
                         linear_kernel="onednn", conv_kernel="onednn"),
    # Not measured yet (no GPU lent): the settings the GPU memory analysis was made with
    # (`python -m engine.bench memory`).
    "cuda": DeviceChoices(encode_chunk=8, decode_chunk=8, channels_last=False, threads=None),
    "mps": DeviceChoices(encode_chunk=8, decode_chunk=8, channels_last=False, threads=None),
}


def choices_for(device: str | torch.device) -> DeviceChoices:
    """The chosen settings of a device ("cpu", "cuda:0", a torch.device ...); other kinds get the CPU's."""
    return CHOICES.get(torch.device(device).type, CHOICES["cpu"])


def apply_threads(choices: DeviceChoices) -> None:
    """Set torch's intra-op thread count when the device's choices fix one."""
    if choices.threads is not None:
        torch.set_num_threads(choices.threads)
