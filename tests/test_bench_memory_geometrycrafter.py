"""`python -m engine.bench memory --model geometrycrafter`: the prediction runs the real window code
(`window_video` + `pipeline.predict`) on meta tensors; over real CPU tensors with the fixtures' tiny weights the
same code reaches the same stage peaks (the memory model describes the real code, not a sketch of it), offloading
removes exactly the other stages' weights, and the table prints."""

from __future__ import annotations

import re

import numpy as np
import pytest
from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from engine.bench.memory import main  # noqa: E402
from engine.bench.memory_geometrycrafter import NETWORKS, STAGES, meta_networks, stage_peaks  # noqa: E402
from engine.models.geometrycrafter.checks.e2e_diff import load_tiny_model  # noqa: E402
from engine.models.geometrycrafter.config import load_config  # noqa: E402
from engine.models.geometrycrafter.pipeline import STAGE_NETWORKS  # noqa: E402
from tests.fixture_paths import GEOMETRYCRAFTER_FIXTURES as FOLDER  # noqa: E402
from tests.fixture_paths import requires_geometrycrafter_fixtures  # noqa: E402

pytestmark = requires_geometrycrafter_fixtures
TINY = FOLDER / "tiny_config.json"
LOW = torch.bfloat16  # the UNet and CLIP: float32 attention on the CPU takes a path of its own


def clip(frames: int = 10, size: tuple[int, int] = (64, 128)) -> np.ndarray:
    """A smooth moving pattern (MoGe's tiny weights find valid pixels in it), uint8 [T, H, W, 3]."""
    t, y, x = np.meshgrid(np.arange(frames), np.arange(size[0]), np.arange(size[1]), indexing="ij")
    rgb = [np.sin(x / 9.0 + t / 3.0 + c) * np.cos(y / 7.0 - c) for c in range(3)]
    return np.clip(np.stack(rgb, -1) * 100 + 128, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("variant", ["diff", "determ"])
def test_meta_peaks_equal_the_real_pipelines_cpu_peaks(variant):
    config = load_config(TINY)
    real_network = load_tiny_model(FOLDER, config, variant)
    for name in ("unet", "image_encoder"):
        getattr(real_network, name).to(LOW)
    frames = clip()  # 10 frames: two decoder chunks of 8, the second partial
    with sdpa_kernel(SDPBackend.MATH):  # the same attention ops on both devices
        real = stage_peaks(real_network, frames, cuda_attention=False, offload=False)
        meta = stage_peaks(meta_networks(config, variant, LOW), frames, cuda_attention=False, offload=False)
    assert meta.weights == real.weights == sum(t.numel() * t.element_size() for name in NETWORKS
                                               for t in (*getattr(real_network, name).parameters(),
                                                         *getattr(real_network, name).buffers()))
    video = frames.size * 4  # the window's frames as float32
    for stage in STAGES:
        assert real.peaks[stage] > real.weights + video, stage  # the frames and the activations are counted
        assert meta.peaks[stage] == pytest.approx(real.peaks[stage], rel=0.02), stage


def test_offloading_keeps_only_the_running_stages_weights():
    network = meta_networks(load_config(TINY), "diff", LOW)
    frames = np.zeros((6, 64, 128, 3), np.uint8)
    resident = stage_peaks(network, frames, cuda_attention=False, offload=False)
    offloaded = stage_peaks(network, frames, cuda_attention=False)
    size = {name: sum(t.numel() * t.element_size() for t in (*getattr(network, name).parameters(),
                                                              *getattr(network, name).buffers()))
            for name in NETWORKS}
    for stage in STAGES:
        others = sum(size[name] for name in NETWORKS if name not in STAGE_NETWORKS[stage])
        assert resident.peaks[stage] - offloaded.peaks[stage] == others, stage


def test_bench_memory_prints_the_geometrycrafter_table(capsys):
    assert main(["--model", "geometrycrafter", "--config", str(TINY), "--sizes", "64", "128", "128", "128",
                 "--frames", "6"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if re.match(r"(diff|determ)\s+\d+x\d+\s+fp16", line)]
    assert [(r[0], r[1]) for r in rows] == [("diff", "64x128"), ("diff", "128x128"), ("determ", "64x128"),
                                            ("determ", "128x128")]
    for row in rows:
        values = [float(v) for v in row[3:]]
        stages, peak, resident = values[1:-2], values[-2], values[-1]
        assert peak == max(stages) and min(stages) > 0 and resident >= peak  # GB to 2 decimals
    assert "Not counted:" in out
