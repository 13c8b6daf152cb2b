"""`python -m engine.bench memory --model geometrycrafter`: the predicted stage peaks of one window over meta
tensors equal those of real CPU tensors running the same ops (tiny fixture configuration), and the table prints."""

from __future__ import annotations

import re

import pytest
from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from engine.bench.memory import main  # noqa: E402
from engine.bench.memory_geometrycrafter import STAGES, meta_networks, stage_peaks  # noqa: E402
from engine.models.geometrycrafter.config import load_config  # noqa: E402
from tests.fixture_paths import GEOMETRYCRAFTER_FIXTURES as FOLDER  # noqa: E402
from tests.fixture_paths import requires_geometrycrafter_fixtures  # noqa: E402

pytestmark = requires_geometrycrafter_fixtures
TINY = FOLDER / "tiny_config.json"


@pytest.mark.parametrize("variant", ["diff", "determ"])
def test_meta_peaks_equal_real_cpu_peaks(variant):
    config = load_config(TINY)
    # bfloat16 (the UNet and CLIP; the others stay float32): float32 attention takes a CPU-only path.
    with sdpa_kernel(SDPBackend.MATH):  # the same attention ops on both devices
        real = stage_peaks(meta_networks(config, variant, torch.bfloat16, "cpu"), (64, 128), 6, cuda_attention=False)
        meta = stage_peaks(meta_networks(config, variant, torch.bfloat16), (64, 128), 6, cuda_attention=False)
    networks = meta_networks(config, variant, torch.bfloat16)
    assert meta.weights == real.weights == sum(t.numel() * t.element_size() for m in networks.values()
                                               for t in (*m.parameters(), *m.buffers()))
    frames = 6 * 3 * 64 * 128 * 4
    for stage in STAGES:
        assert real.peaks[stage] > real.weights + frames, stage  # the frames and the activations are counted
        assert meta.peaks[stage] == pytest.approx(real.peaks[stage], rel=0.02), stage


def test_bench_memory_prints_the_geometrycrafter_table(capsys):
    assert main(["--model", "geometrycrafter", "--config", str(TINY), "--sizes", "64", "128", "128", "128",
                 "--frames", "6"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if re.match(r"(diff|determ)\s+\d+x\d+\s+fp16", line)]
    assert [(r[0], r[1]) for r in rows] == [("diff", "64x128"), ("diff", "128x128"), ("determ", "64x128"),
                                            ("determ", "128x128")]
    for row in rows:
        values = [float(v) for v in row[3:]]
        assert values[-1] == max(values[1:-1]) and min(values[1:-1]) >= values[0] > 0  # GB to 2 decimals
    assert "Not counted:" in out
