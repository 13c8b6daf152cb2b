"""`python -m engine.bench memory`: the peak CUDA memory of Geo4D window inference, predicted on a
machine without a GPU: what torch.cuda.max_memory_allocated would report for the weights and for
each backend call of `Geo4D.predict` (encode one chunk of frames, denoise one batch of windows,
decode one window), per precision.

How: the networks are built on the meta device (shapes and dtypes, no data) and the real
`TorchBackend` calls run on meta inputs. `StorageTracker`, a TorchDispatchMode, sees the outputs of
every aten op and counts each new tensor storage's bytes from its creation until it dies (a weakref
finalizer on the storage), weights included: the live bytes a CUDA run would hold in tensors.
(torch.distributed._tools.mem_tracker.MemTracker counts the same way, but for training: module
states, optimizer hooks, sizes rounded to CUDA blocks; peaks per backend call need only this.)

Attention: meta tensors have no fused kernels, so there `F.scaled_dot_product_attention` takes the
math path (aten.bmm, aten._safe_softmax), which holds the [queries x keys] weights that CUDA's fused
kernels never hold. `CudaAttention`, a TorchFunctionMode, sends each call to the kernel that
PyTorch selects on an sm80+ GPU (aten/src/ATen/native/transformers/cuda/sdp_utils.cpp) and runs
that aten op on meta, so only its outputs count:
- q, k or v with a last-dim stride other than 1 -> math: every fused kernel refuses such inputs. The
  VAE's single-head AttnBlock passes transposed views, so on CUDA it really does materialise its
  [pixels x pixels] weights (in float32, as the math path upcasts float16/bfloat16). At 320x512
  those are not at the VAE's peak, which full-resolution convolutions set;
- float16/bfloat16 with head dim <= 256 -> flash attention: the output and a float32 logsumexp
  [N, heads, L]. (Torch builds with cuDNN > 9.15 prefer cuDNN attention on sm90; its output is the
  same without the logsumexp, so there this counts at most 2/head_dim of those outputs too much.
  Head dims that are not multiples of 8 are padded by CUDA first: those copies are not counted.)
- otherwise, when the head dims are multiples of 8 (float16/bfloat16) or 4 (float32) ->
  memory-efficient attention: the output only (no logsumexp without autograd); else math.

Not counted: cuDNN / cuBLAS workspaces and any kernel's internal buffers, the caching allocator's
rounding (512 B blocks, 2 MB segments) and fragmentation, the CUDA context (outside
max_memory_allocated anyway), and what `Geo4D.predict` keeps between calls (a float32 copy of the
context, the clip's latents, the DDIM state: a few MB).

Checked in tests/test_bench_memory.py (tiny configuration): over real CPU tensors the same tracker
gives the same stage peaks as over meta tensors when both run the same ops (math attention on both
sides; the UNet in bfloat16, as its float32 CPU attention takes a path of its own). The full-size
model at 64x128 in bfloat16 gave equal peaks too (3.08 / 3.04 / 3.10 GB, encoding / diffusion /
decoding).
"""

from __future__ import annotations

import argparse
import contextlib
import weakref
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

from ..errors import EngineError
from ..models.geo4d.attention import TEXT_TOKENS
from ..models.geo4d.config import OFFICIAL_CONFIG, load_config, unet_params
from ..models.geo4d.device_choices import choices_for
from ..models.geo4d.model import SamplingOptions, TorchBackend, size_rule
from ..models.geo4d.unet import IMAGE_TOKENS_PER_FRAME
from ..models.geo4d.weights import Geo4DModules, build_modules, drop_not_run
from ..pipeline.reconstruct import PRECISIONS
from ..windows.schedule import WINDOW_LENGTH

STAGES = ("encoding", "diffusion", "decoding")
GB = 1024 ** 3
# Substrings of the aten op names that show which attention path ran.
ATTENTION_OPS = ("attention", "softmax")


class StorageTracker(TorchDispatchMode):
    """Live and peak bytes of the tensor storages on `device`: a storage counts from the op that
    creates it (or `track`, for tensors made before the mode, such as weights) until it dies.
    `ops` collects the names of the aten ops dispatched since the last `reset_peak`."""

    def __init__(self, device: torch.device):
        super().__init__()
        self.device = device
        self.live = 0
        self.peak = 0
        self.ops: set[str] = set()
        self._counted = WeakIdKeyDictionary()

    def track(self, tensor) -> None:
        if not isinstance(tensor, torch.Tensor) or tensor.device != self.device:
            return
        storage = tensor.untyped_storage()
        if storage in self._counted:
            return
        nbytes = storage.nbytes()
        self._counted[storage] = nbytes
        # Storages keep their Python object as long as they live, so this runs when the memory is freed.
        weakref.finalize(storage, self._free, nbytes)
        self.live += nbytes
        self.peak = max(self.peak, self.live)

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def reset_peak(self) -> None:
        self.peak = self.live
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops.add(str(func))
        for tensor in tree_flatten(out)[0]:
            self.track(tensor)
        return out


def cuda_attention_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> str:
    """The SDPA kernel CUDA runs for these inputs (no mask, no dropout, no grad): flash, efficient
    or math (see the module docstring)."""
    if any(t.stride(-1) != 1 for t in (q, k, v)):
        return "math"
    half = q.dtype in (torch.float16, torch.bfloat16)
    dims = (q.shape[-1], k.shape[-1], v.shape[-1])
    if half and len(set(dims)) == 1 and dims[0] <= 256:
        return "flash"
    if all(d % (8 if half else 4) == 0 for d in dims):
        return "efficient"
    return "math"


SDPA_DEFAULTS = {"attn_mask": None, "dropout_p": 0.0, "is_causal": False, "scale": None}


class CudaAttention(TorchFunctionMode):
    """Runs F.scaled_dot_product_attention as CUDA would (`cuda_attention_kernel`) on meta tensors;
    `kernels` counts the kernels chosen."""

    def __init__(self):
        super().__init__()
        self.kernels: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        # A flag at its default (the attention passes is_causal=False unless a config asks for the mask) is plain SDPA.
        if len(args) != 3 or any(SDPA_DEFAULTS.get(name, ...) != value for name, value in kwargs.items()):
            raise NotImplementedError("CudaAttention models SDPA without mask, dropout, causal flag or scale only")
        q, k, v = args
        kernel = cuda_attention_kernel(q, k, v)
        self.kernels[kernel] += 1
        if kernel == "flash":
            return torch.ops.aten._scaled_dot_product_flash_attention(q, k, v)[0]
        if kernel == "efficient":
            return torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, False)[0]
        return func(q, k, v)


def meta_modules(config: dict, dtype: torch.dtype) -> Geo4DModules:
    """The three networks of `config` as loaded (less the parts inference never runs, weights.NOT_RUN) and a
    context, in `dtype` on the meta device (no data)."""
    with torch.device("meta"):
        modules = {name: drop_not_run(name, module) for name, module in build_modules(config).items()}
        context = torch.empty(1, context_tokens(), unet_params(config)["context_dim"], dtype=dtype)
    for module in modules.values():
        module.to(dtype).eval().requires_grad_(False)
    # TorchBackend never reads the weights folder, and there is none.
    return Geo4DModules(modules["unet"], modules["vae"], modules["pointmap_vae"], context, config, Path())


def context_tokens() -> int:
    return TEXT_TOKENS + IMAGE_TOKENS_PER_FRAME * WINDOW_LENGTH


@dataclass
class StagePeaks:
    """Bytes: the weights (with the context), and the peak during each backend call, weights and
    the call's inputs included."""

    weights: int
    peaks: dict[str, int]
    attention_ops: dict[str, list[str]]    # per stage, the attention-related aten ops dispatched
    kernels: dict[str, dict[str, int]]     # per stage, CudaAttention's choices (empty without it)

    @property
    def overall(self) -> int:
        return max(self.peaks.values())


def stage_peaks(modules: Geo4DModules, size: tuple[int, int], window_batch: int, cuda_attention: bool,
                stages: tuple[str, ...] = STAGES) -> StagePeaks:
    """Runs TorchBackend.encode on one encode chunk, .denoise on `window_batch` windows and .decode
    on one window (those of `stages`), on inputs of `modules`' device, and returns their peaks.
    `cuda_attention`: run attention as CUDA would (for meta modules; see CudaAttention)."""
    device = modules.context.device
    tracker = StorageTracker(device)
    for module in (modules.unet, modules.vae, modules.pointmap_vae):
        for tensor in (*module.parameters(), *module.buffers()):
            tracker.track(tensor)
    tracker.track(modules.context)
    weights = tracker.live
    # The device's choices (VAE chunks, layout): CUDA's when modelling it, else the CPU's, as the real CPU run,
    # with torch's layers: oneDNN's packed weights (CPU choices) are tensors the tracker cannot see.
    backend = TorchBackend(modules, replace(choices_for("cuda" if cuda_attention else "cpu"), linear_kernel="mkl",
                                            conv_kernel="torch"))
    h, w = size
    lh, lw = h // 8, w // 8
    b, t = window_batch, WINDOW_LENGTH
    chunk = SamplingOptions().encode_chunk
    calls = {
        "encoding": lambda: backend.encode(torch.zeros(1, 3, chunk, h, w, device=device),
                                           torch.zeros(chunk, 4, lh, lw, device=device)),
        # As Geo4D.predict: the context projected once for the clip (its keys and values stay live through
        # the diffusion), every batch of windows denoised with it.
        "diffusion": lambda: backend.denoise(torch.zeros(b, 20, t, lh, lw, device=device),
                                             torch.zeros(b, dtype=torch.int64, device=device),
                                             backend.prepare_context(torch.zeros(1, context_tokens(),
                                                                                 modules.context.shape[-1],
                                                                                 device=device), t),
                                             torch.zeros(b, dtype=torch.int64, device=device)),
        "decoding": lambda: backend.decode(torch.zeros(1, 16, t, lh, lw, device=device)),
    }
    peaks, attention_ops, kernels = {}, {}, {}
    for stage in stages:
        call = calls[stage]
        attention = CudaAttention() if cuda_attention else None
        with tracker, torch.no_grad(), attention or contextlib.nullcontext():
            # Inputs are made inside the call's frame, so they are live when the call starts and
            # die with its outputs before the next stage, as in Geo4D.predict.
            tracker.reset_peak()
            call()
        peaks[stage] = tracker.peak
        attention_ops[stage] = sorted(op for op in tracker.ops if any(s in op for s in ATTENTION_OPS))
        kernels[stage] = dict(attention.kernels) if attention else {}
    return StagePeaks(weights, peaks, attention_ops, kernels)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.bench memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="full", help="full (the real architecture) or a tiny_config.json")
    parser.add_argument("--size", type=int, nargs=2, default=(320, 512), metavar=("H", "W"))
    parser.add_argument("--window-batch", type=int, default=1, help="windows denoised together")
    parser.add_argument("--precision", nargs="+", choices=list(PRECISIONS), default=None,
                        help="default: all three for Geo4D, fp16 for GeometryCrafter")
    parser.add_argument("--model", choices=["geo4d", "geometrycrafter"], default="geo4d")
    parser.add_argument("--variant", nargs="+", choices=["diff", "determ"], default=["diff", "determ"],
                        help="GeometryCrafter's variants")
    parser.add_argument("--frames", type=int, default=110, help="GeometryCrafter: frames per window")
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 576, 576, 1024], metavar="H W",
                        help="GeometryCrafter: processing sizes, H W pairs (default the official README's "
                             "320x576 and 576x1024)")
    args = parser.parse_args(argv)
    if args.model == "geometrycrafter":
        from .memory_geometrycrafter import report

        if len(args.sizes) % 2:
            parser.error("--sizes takes H W pairs")
        sizes = [tuple(args.sizes[i:i + 2]) for i in range(0, len(args.sizes), 2)]
        report(args.config, sizes, args.frames, args.variant,
               {p: getattr(torch, PRECISIONS[p]) for p in args.precision or ["fp16"]})
        return 0
    args.precision = args.precision or list(PRECISIONS)
    config = load_config(OFFICIAL_CONFIG if args.config == "full" else args.config)
    try:
        size_rule(config).check(args.size)
    except EngineError as exc:
        parser.error(str(exc))

    print(f"Predicted peak CUDA memory (torch.cuda.max_memory_allocated) of Geo4D window inference, "
          f"{'FULL-size' if args.config == 'full' else args.config} architecture, {args.size[0]}x{args.size[1]}, "
          f"window batch {args.window_batch}; GB = 2^30 bytes, weights included in every stage")
    print("Modelled: live tensor storages of the real TorchBackend calls on meta tensors, attention as CUDA's "
          "SDPA kernels run it (the attention ops below).")
    print("Not counted: cuDNN/cuBLAS workspaces and kernels' internal buffers, the caching allocator's rounding "
          "(512 B blocks, 2 MB segments) and fragmentation, the CUDA context, the caller's latents between calls.")
    header = f"{'precision':9} {'weights GB':>11} " + " ".join(f"{s + ' GB':>12}" for s in STAGES) + f" {'peak GB':>9}"
    print(header + "\n" + "-" * len(header), flush=True)
    results = {}
    for precision in args.precision:
        result = stage_peaks(meta_modules(config, getattr(torch, PRECISIONS[precision])), tuple(args.size),
                             args.window_batch, cuda_attention=True)
        results[precision] = result
        print(f"{precision:9} {result.weights / GB:11.2f} "
              + " ".join(f"{result.peaks[s] / GB:12.2f}" for s in STAGES) + f" {result.overall / GB:9.2f}", flush=True)
    print("\nAttention per stage (SDPA kernel chosen x calls; attention-related aten ops dispatched):")
    for precision, result in results.items():
        for stage in STAGES:
            kernels = ", ".join(f"{k} x{n}" for k, n in sorted(result.kernels[stage].items())) or "none"
            print(f"  {precision:5} {stage:10} {kernels:28} {' '.join(result.attention_ops[stage])}")
    return 0
