"""`python -m engine.bench model` runs and prints its figures (tiny model, CPU, one short run)."""

from engine.bench.model import main
from tests.fixture_paths import GEO4D_FIXTURES, requires_geo4d_fixtures


@requires_geo4d_fixtures
def test_bench_model_prints_a_row_per_runtime_and_precision(capsys):
    assert main(["--config", str(GEO4D_FIXTURES / "tiny_config.json"), "--device", "cpu", "--runtimes", "torch",
                 "--precisions", "fp32", "--frames", "16", "--size", "32", "32", "--steps", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "16 frames at 32x32" in lines[0]
    assert len(lines) == 2 and lines[1].startswith("runtime torch | precision fp32 | windows 1")
    for figure in ("encode s/frame", "diffusion s/frame", "decoding s/frame", "total s/frame"):
        assert float(lines[1].split(figure)[1].split("|")[0]) > 0
