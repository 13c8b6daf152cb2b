"""Which device and precision the model runs on: Auto, CUDA (`cuda` or `cuda:N`), Apple Silicon (`mps`) or the CPU.

The decisions are pure functions of what the machine offers (`Machine`), so the choices this machine cannot
make (MPS, several GPUs) are tested through them; `machine()` asks PyTorch what is there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import EngineError, InputError

if TYPE_CHECKING:  # torch only where it is used: the add-on loads this module (through engine.options) without it
    import torch

# What a device runs, the default first: CUDA fp16 (tensor cores), bf16 where the GPU has it (Ampere and later);
# MPS fp16 and fp32 (its bf16 needs macOS 14, untested); the CPU fp32 and bf16 (its fp16 kernels are few and slow).
SUPPORTED = {"cuda": ("fp16", "bf16", "fp32"), "mps": ("fp16", "fp32"), "cpu": ("fp32", "bf16")}
DEVICE_HELP = "auto (default: the first CUDA GPU, else Apple Silicon's mps, else cpu), cuda, cuda:N, mps or cpu"
PRECISION_HELP = ("default fp16 on cuda and mps, fp32 on cpu; cuda runs fp16, bf16 (Ampere and later) and fp32, "
                  "mps fp16 and fp32, cpu fp32 and bf16; fp16 and bf16 change the numbers "
                  "(fp32 is the reference; their difference to it: docs/runtimes.md)")


@dataclass(frozen=True)
class Machine:
    """What PyTorch offers here: CUDA GPUs (by name), whether they have bf16, and Apple Silicon's MPS."""

    cuda: tuple[str, ...] = ()
    cuda_bf16: bool = False
    mps: bool = False


def machine() -> Machine:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = getattr(torch.backends, "mps", None)
    return Machine(cuda=tuple(torch.cuda.get_device_name(i) for i in range(count)),
                   cuda_bf16=bool(count) and torch.cuda.is_bf16_supported(),
                   mps=bool(mps and mps.is_available()))


def release_freed(device: str | torch.device) -> None:
    """Give back what dropped networks held, before another runtime loads its own copy of the weights, or after
    weights were repacked (models.geo4d.onednn): Python's reference cycles collected; the heap pages that freed
    tensors leave behind returned to the system (glibc keeps freed blocks under 32 MB in its heap, counted in
    the process's memory until something reuses them); on CUDA, the blocks torch's allocator keeps cached
    (which ONNX Runtime's allocator could not use otherwise). device: a name ("cuda:0") or a torch.device."""
    import gc

    import torch

    gc.collect()
    _trim_heap()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def _trim_heap() -> None:
    """glibc's malloc_trim(0), where the process has it (Linux with glibc; not macOS, Windows or musl)."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim  # the symbols the process has loaded, the C library's among them
    except (OSError, AttributeError, TypeError):  # no such function; Windows cannot open "None"
        return
    trim(0)


def choose(device: str | None, precision: str | None, here: Machine) -> tuple[str, str]:
    """(device, precision) to run with: `device` None or "auto" picks cuda:0, else mps, else cpu; `precision` None
    picks the device's default. Refuses (InputError / EngineError, with the fix) what this machine cannot run."""
    device = (device or "auto").strip().lower()
    if device == "auto":
        device = "cuda:0" if here.cuda else "mps" if here.mps else "cpu"
    elif device == "cuda":
        device = "cuda:0"
    match = re.fullmatch(r"cuda:(\d+)", device)
    if match:
        if not here.cuda:
            raise EngineError(f"--device {device} was asked for but PyTorch sees no CUDA GPU",
                              "use --device auto or cpu, or install a CUDA build of PyTorch")
        if int(match[1]) >= len(here.cuda):
            listed = ", ".join(f"cuda:{i} {name}" for i, name in enumerate(here.cuda))
            raise InputError(f"--device {device}: there is no such GPU (PyTorch sees {listed})",
                             f"use one of cuda:0 to cuda:{len(here.cuda) - 1}")
        kind = "cuda"
    elif device == "mps":
        if not here.mps:
            raise EngineError("--device mps was asked for but PyTorch offers no Apple Silicon GPU (MPS) here",
                              "use --device auto or cpu; MPS needs a Mac with Apple Silicon and PyTorch's macOS build")
        kind = "mps"
    elif device == "cpu":
        kind = "cpu"
    else:
        raise InputError(f"unknown device {device!r}", f"use {DEVICE_HELP}")
    supported = SUPPORTED[kind]
    if kind == "cuda" and not here.cuda_bf16:
        supported = tuple(p for p in supported if p != "bf16")
    precision = precision or supported[0]
    if precision not in supported:
        raise InputError(f"{device} does not run {precision}", f"use --precision {' or '.join(supported)}")
    return device, precision
