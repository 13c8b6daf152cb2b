"""`python -m engine.bench memory`: the storage tracker gives the same peaks over meta tensors as over
real CPU tensors running the same ops, CudaAttention counts a fused kernel's outputs only (and the
math path's weights where CUDA takes it), and the table prints. Tiny fixture configuration."""

from __future__ import annotations

import re

import pytest

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from engine.bench.memory import CudaAttention, StorageTracker, main, meta_modules, stage_peaks  # noqa: E402
from engine.bench.model import random_modules  # noqa: E402
from engine.models.geo4d.config import OFFICIAL_CONFIG, load_config, vae_params  # noqa: E402
from engine.models.geo4d.device_choices import choices_for  # noqa: E402
from engine.models.geo4d.model import SamplingOptions  # noqa: E402
from tests.fixture_paths import GEO4D_FIXTURES, requires_geo4d_fixtures  # noqa: E402

TINY = GEO4D_FIXTURES / "tiny_config.json"


@requires_geo4d_fixtures
@pytest.mark.parametrize("dtype, stages", [
    # The VAEs run the same ops on every device; float32 is quick on the CPU.
    (torch.float32, ("encoding", "decoding")),
    # The UNet's float32 attention takes a CPU-only chunked path; bfloat16 sends it through
    # F.scaled_dot_product_attention on both devices.
    (torch.bfloat16, ("diffusion",)),
])
def test_meta_peaks_equal_real_cpu_peaks(tmp_path, dtype, stages):
    config = load_config(TINY)
    with sdpa_kernel(SDPBackend.MATH):  # the same attention ops on both devices
        real = stage_peaks(random_modules(config, torch.device("cpu"), dtype, tmp_path / "w"), (32, 64), 1,
                           cuda_attention=False, stages=stages)
        meta = stage_peaks(meta_modules(config, dtype), (32, 64), 1, cuda_attention=False, stages=stages)
    modules = meta_modules(config, dtype)
    numel = sum(p.numel() for m in (modules.unet, modules.vae, modules.pointmap_vae) for p in m.parameters())
    assert meta.weights == real.weights == dtype.itemsize * (numel + modules.context.numel())
    assert set(real.peaks) == set(stages)
    for stage in stages:
        assert real.peaks[stage] > real.weights + 200_000, stage  # the activations are counted
        assert meta.peaks[stage] == pytest.approx(real.peaks[stage], rel=0.02), stage
    assert real.attention_ops == meta.attention_ops


def _attention_peak(q, k, v) -> tuple[int, str]:
    """Bytes added by one F.scaled_dot_product_attention under CudaAttention, and the kernel used."""
    tracker, attention = StorageTracker(q.device), CudaAttention()
    with tracker, attention, torch.no_grad():
        tracker.reset_peak()
        torch.nn.functional.scaled_dot_product_attention(q, k, v)
    return tracker.peak - tracker.live, next(iter(attention.kernels))


def test_cuda_attention_counts_fused_outputs_only():
    n, heads, length, d = 3, 5, 256, 64
    q = torch.empty(n, length, heads, d, device="meta", dtype=torch.float16).transpose(1, 2)
    # flash: the float16 output and a float32 logsumexp [N, heads, L] (+ 24 bytes of RNG state).
    assert _attention_peak(q, q, q) == (n * heads * length * (2 * d + 4) + 24, "flash")
    # memory-efficient (float32): the output only (+ 16 bytes of RNG state).
    q32 = q.float()
    assert _attention_peak(q32, q32, q32) == (n * heads * length * d * 4 + 16, "efficient")
    # Transposed heads (last-dim stride 1024): no fused kernel, the math path holds [L x L] weights.
    qt = torch.empty(n, heads, d, length, device="meta").transpose(2, 3)
    peak, kernel = _attention_peak(qt, qt, qt)
    assert kernel == "math" and peak >= 2 * n * heads * length * length * 4


@requires_geo4d_fixtures
def test_bench_memory_prints_table(capsys):
    assert main(["--config", str(TINY), "--size", "64", "128", "--window-batch", "2"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in out.splitlines()
            if re.match(r"(fp32|fp16|bf16)\s+\d", line)}
    assert set(rows) == {"fp32", "fp16", "bf16"}
    assert all(len(v) == 5 and v[4] == max(v[1:4]) and min(v[1:4]) > v[0] > 0 for v in rows.values())
    assert re.search(r"fp32\s+diffusion\s+efficient x\d+", out)
    assert re.search(r"bf16\s+diffusion\s+flash x\d+\s+aten\._scaled_dot_product_flash_attention", out)
    # The VAE's one head (64 channels in the tiny model) has contiguous q, k, v (vae.AttnBlock): a fused
    # kernel, not the math path that its transposed views took before.
    assert re.search(r"fp16\s+decoding\s+flash x\d+", out)
    assert "Not counted:" in out


def test_vaes_hold_only_their_widest_full_resolution_block():
    """At 320x512 the VAEs set the window's peak. Decoding holds at most one full-resolution block's input, its
    normalised copy and its first convolution's output (256 + 256 + 128 channels of a chunk of 8 frames), encoding
    three 128-channel activations, beside the stage's own inputs and outputs (under 0.2 GiB here). Before
    vae.ResnetBlock's in-place SiLU and residual and `_Level.layers`, a level's input and each block's first
    convolution output stayed alive as well: 3.87 and 3.15 GiB over the weights in fp32."""
    config = load_config(OFFICIAL_CONFIG)
    dd = vae_params(config)["ddconfig"]
    h, w = 320, 512
    # The frames per VAE call stage_peaks runs: the sampler's encode chunk, CUDA's decode chunk.
    chunks = {"encoding": SamplingOptions().encode_chunk, "decoding": choices_for("cuda").decode_chunk}

    def full_resolution(stage: str, channels: int) -> int:
        return chunks[stage] * channels * h * w * 4  # float32

    result = stage_peaks(meta_modules(config, torch.float32), (h, w), 1, cuda_attention=True,
                         stages=("encoding", "decoding"))
    widest = dd["ch"] * dd["ch_mult"][1]  # the decoder's last level takes 256 channels in and gives 128
    inputs_outputs = 0.2 * 2 ** 30
    held = {stage: result.peaks[stage] - result.weights for stage in chunks}
    assert held["decoding"] <= full_resolution("decoding", 2 * widest + dd["ch"]) + inputs_outputs
    assert held["encoding"] <= full_resolution("encoding", 3 * dd["ch"]) + inputs_outputs
