"""`python -m engine.bench model --model geometrycrafter`: random weights filled in place in the precision each
network runs in, a timed predict over the pipeline's windows, one row per variant (tiny fixture configuration)."""

from __future__ import annotations

import re

from tests.needs import torch_or_skip

torch_or_skip()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.bench.model import main  # noqa: E402
from engine.bench.model_geometrycrafter import random_model  # noqa: E402
from engine.models.geometrycrafter.config import load_config  # noqa: E402
from engine.models.window_model import SamplingOptions  # noqa: E402
from tests.fixture_paths import GEOMETRYCRAFTER_FIXTURES as FOLDER  # noqa: E402
from tests.fixture_paths import requires_geometrycrafter_fixtures  # noqa: E402

pytestmark = requires_geometrycrafter_fixtures
TINY = FOLDER / "tiny_config.json"


def test_random_model_runs_each_network_in_its_precision():
    model = random_model(load_config(TINY), "determ", torch.device("cpu"), torch.bfloat16, 4)
    dtypes = {name: next(getattr(model.network, name).parameters()).dtype
              for name in ("unet", "image_encoder", "vae", "point_map_vae", "moge")}
    assert dtypes == {"unet": torch.bfloat16, "image_encoder": torch.bfloat16, "vae": torch.float32,
                      "point_map_vae": torch.float32, "moge": torch.float32}
    frames = np.random.default_rng(0).integers(0, 256, (6, 64, 128, 3), dtype=np.uint8)
    windows = model.predict(frames, 24.0, np.array([0, 2]), SamplingOptions(steps=1))
    assert windows.window_starts.tolist() == [0, 2] and windows.pointmap.shape == (2, 4, 64, 128, 3)
    assert np.isfinite(windows.pointmap).all()


def test_bench_model_prints_a_row_per_variant(capsys):
    assert main(["--model", "geometrycrafter", "--config", str(TINY), "--size", "64", "128", "--frames", "6",
                 "--window", "4", "--stride", "2", "--steps", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "windows of 4 (2)" in out
    assert "setup = random weights and a warm-up call on 6 frames" in out  # kernels chosen outside the timed call
    rows = [line.split() for line in out.splitlines() if re.match(r"(diff|determ)\s+bf16\s+\d", line)]
    assert [r[0] for r in rows] == ["diff", "determ"]
    assert all(float(v) > 0 for r in rows for v in r[2:])
