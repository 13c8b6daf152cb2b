"""Device and precision choice (engine.devices) for machines this one is not: several GPUs, Apple Silicon, no GPU."""

import platform

import pytest

from engine.devices import Machine, choose
from engine.errors import EngineError, InputError

NO_GPU = Machine()
TWO_AMPERES = Machine(cuda=("NVIDIA A10", "NVIDIA A10"), cuda_bf16=True)
TURING = Machine(cuda=("Tesla T4",), cuda_bf16=False)
APPLE = Machine(mps=True)


@pytest.mark.parametrize("here, device, precision, expected", [
    (NO_GPU, None, None, ("cpu", "fp32")),
    (NO_GPU, "auto", "bf16", ("cpu", "bf16")),
    (TWO_AMPERES, None, None, ("cuda:0", "fp16")),
    (TWO_AMPERES, "cuda", "bf16", ("cuda:0", "bf16")),
    (TWO_AMPERES, "CUDA:1", "fp32", ("cuda:1", "fp32")),
    (TWO_AMPERES, "cpu", None, ("cpu", "fp32")),
    (TURING, "auto", None, ("cuda:0", "fp16")),
    (APPLE, None, None, ("mps", "fp16")),
    (APPLE, "mps", "fp32", ("mps", "fp32")),
    (Machine(cuda=("NVIDIA L4",), cuda_bf16=True, mps=False), "auto", None, ("cuda:0", "fp16")),
])
def test_auto_and_explicit_choices(here, device, precision, expected):
    assert choose(device, precision, here) == expected


@pytest.mark.parametrize("here, device, precision, error, words", [
    (NO_GPU, "cuda", None, EngineError, "PyTorch sees no CUDA GPU"),
    (NO_GPU, "mps", None, EngineError, "no Apple Silicon GPU (MPS)"),
    (TWO_AMPERES, "cuda:2", None, InputError, "cuda:0 NVIDIA A10, cuda:1 NVIDIA A10"),
    (TURING, "cuda", "bf16", InputError, "cuda:0 does not run bf16"),
    (APPLE, "mps", "bf16", InputError, "mps does not run bf16"),
    (NO_GPU, "cpu", "fp16", InputError, "cpu does not run fp16"),
    (NO_GPU, "gpu", None, InputError, "unknown device 'gpu'"),
    (NO_GPU, "cuda:x", None, InputError, "unknown device 'cuda:x'"),
])
def test_what_a_machine_cannot_run_is_refused_with_the_fix(here, device, precision, error, words):
    with pytest.raises(error) as caught:
        choose(device, precision, here)
    assert words in caught.value.problem and caught.value.fix


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's heap only")
def test_release_freed_gives_back_the_heap_pages_of_freed_tensors():
    """Tensors under glibc's mmap threshold live in its heap; freed below a live block, their pages stay the
    process's until release_freed (the oneDNN repacking frees the plain weights: up to 0.13 GiB at the peak before)."""
    torch = pytest.importorskip("torch")  # the lane without torch

    from engine.devices import release_freed

    def resident() -> int:
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) << 10

    torch.ones(16 << 18)  # a freed 16 MB mapping raises glibc's mmap threshold to 16 MB: 8 MB blocks go to the heap
    held, pins = [], []
    for _ in range(64):  # 512 MB in 8 MB tensors, each followed by a small live one, so free cannot trim the top
        held.append(torch.ones(8 << 18))
        pins.append(torch.ones(1024))
    before = resident()
    del held
    release_freed("cpu")
    assert before - resident() > 256 << 20
