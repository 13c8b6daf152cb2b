"""`python -m engine.bench model` on a fixture's tiny configuration: the table has a row per runtime
and precision, the ONNX Runtime predictions agree with torch fp32, and a precision a runtime cannot
run is reported as n/a instead of failing the benchmark. No timing is asserted."""

from __future__ import annotations

import re

import pytest

from tests.needs import torch_or_skip

torch_or_skip()

from engine.bench.model import main  # noqa: E402
from tests.fixture_paths import GEO4D_FIXTURES, requires_geo4d_fixtures  # noqa: E402

pytestmark = requires_geo4d_fixtures


def test_bench_model_prints_table_and_runtimes_agree(capsys):
    code = main(["--config", str(GEO4D_FIXTURES / "tiny_config.json"), "--size", "32", "64", "--frames", "20",
                 "--stride", "4", "--steps", "1", "--device", "cpu", "--runtime", "torch", "onnx",
                 "--precision", "fp32", "bf16", "--no-warmup"])
    out = capsys.readouterr().out
    assert code == 0
    assert "20 frames at 32x64, stride 4 -> 2 windows, 1 DDIM steps" in out
    rows = {tuple(line.split()[:2]): line for line in out.splitlines() if re.match(r"(torch|onnx)\s", line)}
    assert set(rows) == {("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "bf16")}
    assert rows[("torch", "fp32")].endswith("reference")
    assert "n/a (the ONNX runtime runs float32 or float16)" in rows[("onnx", "bf16")]

    def figures(line: str) -> tuple[list[float], float]:
        """The 8 seconds / GB columns and the max difference of a measured row."""
        fields = line.split()
        return [float(v) for v in fields[2:10]], float(fields[11])

    seconds_and_memory, onnx_diff = figures(rows[("onnx", "fp32")])
    assert all(v >= 0 for v in seconds_and_memory) and seconds_and_memory[3] > 0  # total seconds
    assert onnx_diff < 1e-3  # float32 ONNX Runtime vs torch, as tests/test_onnx_pipeline.py
    _, bf16_diff = figures(rows[("torch", "bf16")])
    assert onnx_diff < bf16_diff  # bf16's 8-bit mantissa is far coarser than float32 reordering


def test_bench_model_refuses_unusable_sizes_before_building_anything(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(GEO4D_FIXTURES / "tiny_config.json"), "--size", "30", "64", "--device", "cpu"])
    assert exit_info.value.code == 2
    assert "multiples of 32" in capsys.readouterr().err
