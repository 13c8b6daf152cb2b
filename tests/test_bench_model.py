"""`python -m engine.bench model` on a fixture's tiny configuration: the table has a row per runtime
and precision, the ONNX Runtime predictions agree with torch fp32, and a precision a runtime cannot
run is reported as n/a instead of failing the benchmark. No timing is asserted."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from tests.needs import torch_or_skip

torch_or_skip()

import json  # noqa: E402

import torch  # noqa: E402

from engine.bench import choices  # noqa: E402
from engine.bench.model import main, official_clip_cost, official_window_count  # noqa: E402
from engine.errors import EngineError  # noqa: E402
from engine.models.geo4d.device_choices import CHOICES, choices_for  # noqa: E402
from tests.fixture_paths import GEO4D_FIXTURES, requires_geo4d_fixtures  # noqa: E402

pytestmark = requires_geo4d_fixtures


def test_bench_model_prints_table_and_runtimes_agree(capsys):
    code = main(["--config", str(GEO4D_FIXTURES / "tiny_config.json"), "--size", "32", "64", "--frames", "20",
                 "--stride", "4", "--steps", "1", "--device", "cpu", "--runtime", "torch", "onnx",
                 "--precision", "fp32", "bf16", "--no-warmup", "--also-nchw"])
    out = capsys.readouterr().out
    assert code == 0
    assert "20 frames at 32x64, stride 4 -> 2 windows, 1 DDIM steps" in out
    rows = {tuple(line.split()[:2]): line for line in out.splitlines() if re.match(r"(torch|onnx)[/\s]", line)}
    assert set(rows) == {("torch", "fp32"), ("torch/nchw", "fp32"), ("torch", "bf16"), ("onnx", "fp32"),
                         ("onnx", "bf16")}
    assert "2 windows hold 32 window frames" in out
    assert rows[("torch", "fp32")].endswith("reference")
    assert "n/a (the ONNX runtime runs float32 or float16)" in rows[("onnx", "bf16")]

    def figures(line: str) -> tuple[list[float], float]:
        """The 8 seconds / GB columns and the max difference of a measured row."""
        fields = line.split()
        return [float(v) for v in fields[2:10]], float(fields[11])

    seconds_and_memory, onnx_diff = figures(rows[("onnx", "fp32")])
    assert all(v >= 0 for v in seconds_and_memory) and seconds_and_memory[3] > 0  # total seconds
    assert onnx_diff < 1e-3  # float32 ONNX Runtime vs torch, as tests/test_onnx_pipeline.py
    _, nchw_diff = figures(rows[("torch/nchw", "fp32")])
    assert nchw_diff < 1e-3  # the VAEs' memory layout changes rounding only, as ONNX Runtime's reordering
    _, bf16_diff = figures(rows[("torch", "bf16")])
    assert onnx_diff < bf16_diff  # bf16's 8-bit mantissa is far coarser than float32 reordering


def test_bench_model_refuses_unusable_sizes_before_building_anything(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(GEO4D_FIXTURES / "tiny_config.json"), "--size", "30", "64", "--device", "cpu"])
    assert exit_info.value.code == 2
    assert "multiples of 32" in capsys.readouterr().err


def test_official_window_count_is_the_official_slice_list():
    """The official demo's window count (it runs its last window twice when (T - 16) % stride == 0)
    against its own slice lists (fixture windows.json)."""
    cases = json.loads((GEO4D_FIXTURES / "windows.json").read_text())["cases"]
    assert len(cases) >= 10
    for case in cases:
        assert official_window_count(case["T"], case["stride"]) == len(case["windows"]), case


def test_official_clip_cost_counts_every_window_the_official_runs():
    # 64 frames at stride 4: 13 windows, the last run twice: 14 x 16 window frames over 64 clip frames.
    line = official_clip_cost("1,2,3,4", 64, 4)
    assert "14 windows" in line and "x3.500" in line
    assert "3.500 / 7.000 / 10.500 / 14.000, total 35.000 s per clip frame" in line
    with pytest.raises(Exception, match="not four numbers"):
        official_clip_cost("1,2,3", 64, 4)


def test_device_choices_rows_mark_one_chosen_value_per_choice():
    for device in CHOICES:
        chosen = choices_for(device)
        rows = choices.rows_of(chosen)
        marked: dict[str, int] = {}
        for choice, value, _ in rows:
            marked[choice] = marked.get(choice, 0) + choices.is_chosen(choice, value, chosen)
        assert set(marked.values()) == {1}, (device, marked)
    assert choices_for("cuda:1") == CHOICES["cuda"] and choices_for("cpu") == CHOICES["cpu"]


def test_device_choices_measure_runs_each_stage_on_the_tiny_vae():
    config = str(GEO4D_FIXTURES / "tiny_config.json")
    chosen = choices_for("cpu")
    for variant in (choices.Variant("encode", chosen), choices.Variant("decode", chosen),
                    choices.Variant("attention", chosen, "transposed")):
        result = choices.measure(variant, config, (32, 64), 4, "cpu")
        assert result["seconds"] > 0 and result["peak_bytes"] > 0
    # The UNet call with each linear and convolution kernel: the same output up to float rounding.
    outputs = [choices.measure(choices.Variant("denoise", replace(chosen, linear_kernel=linear, conv_kernel=conv)),
                               config, (32, 64), 4, "cpu")["output"]
               for linear, conv in (("mkl", "torch"), ("onednn", "torch"), ("mkl", "onednn"))]
    assert outputs[0].shape == (1, 16, 4, 4, 8) and outputs[0].abs().max() > 0.1
    for output in outputs[1:]:
        torch.testing.assert_close(output, outputs[0], atol=1e-5, rtol=1e-5)


def test_runtimes_in_separate_runs_share_the_reference_and_the_onnx_export(capsys, tmp_path):
    """--reference keeps the torch fp32 predictions for a later onnx-only run to compare with; --onnx-cache
    keeps the exported graphs, so the second onnx run exports nothing."""
    common = ["--config", str(GEO4D_FIXTURES / "tiny_config.json"), "--size", "32", "64", "--frames", "16",
              "--steps", "1", "--device", "cpu", "--precision", "fp32", "--no-warmup",
              "--reference", str(tmp_path / "reference"), "--onnx-cache", str(tmp_path / "cache")]

    def row(runtime: str) -> str:
        assert main([*common, "--runtime", runtime]) == 0
        return next(line for line in capsys.readouterr().out.splitlines() if line.startswith(runtime + " "))

    assert row("onnx").endswith("n/a (no torch fp32 row)")  # no reference stored yet
    graphs = sorted((tmp_path / "cache").glob("*/onnx/*.onnx"))
    assert [p.name for p in graphs] == ["pointmap-decoder-float32.onnx", "unet-float32.onnx",
                                        "vae-decoder-float32.onnx", "vae-encoder-float32.onnx"]
    exported = {p: p.stat().st_mtime_ns for p in graphs}
    assert row("torch").endswith("reference")
    assert (tmp_path / "reference" / "windows.json").is_file()
    diff = float(row("onnx").split()[11])
    assert 0 < diff < 1e-3  # float32 ONNX Runtime vs torch, as in one run (test above)
    assert {p: p.stat().st_mtime_ns for p in graphs} == exported  # reused, not exported again

    with pytest.raises(EngineError, match="not this clip's"):
        main([*common[:6], "20", *common[7:], "--runtime", "onnx"])
