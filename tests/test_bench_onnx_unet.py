"""`python -m engine.bench onnx-unet` on the fixtures' tiny configurations: for both models the ONNX Runtime
UNet exported by the product's exporter agrees with torch within the fixtures' tolerance, and the torch
UNet is gone before ONNX Runtime reads the graph (one copy of the weights, as `reconstruct --runtime onnx`)."""

from __future__ import annotations

import re

import pytest

from tests.needs import torch_or_skip

torch_or_skip()
pytest.importorskip("onnxruntime")

from engine.bench import onnx_unet  # noqa: E402
from engine.models.geo4d.onnx_backend import OnnxUNet  # noqa: E402
from engine.models.geo4d.unet import UNet3D  # noqa: E402
from engine.models.geometrycrafter.onnx_unet import OnnxSpatioTemporalUNet  # noqa: E402
from engine.models.geometrycrafter.unet import SpatioTemporalUNet  # noqa: E402
from tests.fixture_paths import GEO4D_FIXTURES, GEOMETRYCRAFTER_FIXTURES  # noqa: E402
from tests.sessions_alive import count_networks_at_sessions  # noqa: E402


@pytest.mark.parametrize("model, folder, extra, session, network", [
    ("geo4d", GEO4D_FIXTURES, [], OnnxUNet, UNet3D),
    ("geometrycrafter", GEOMETRYCRAFTER_FIXTURES, ["--variant", "diff"], OnnxSpatioTemporalUNet, SpatioTemporalUNet),
    ("geometrycrafter", GEOMETRYCRAFTER_FIXTURES, ["--variant", "determ"], OnnxSpatioTemporalUNet,
     SpatioTemporalUNet),
])
def test_onnx_unet_bench_agrees_with_torch(capsys, monkeypatch, model, folder, extra, session, network):
    config = folder / "tiny_config.json"
    if not config.is_file():
        pytest.skip(f"no fixtures at {folder}")
    networks, alive = count_networks_at_sessions(monkeypatch, session, (network,))
    before = networks()  # networks other tests of this process still hold (a cached model) are not the bench's
    assert onnx_unet.main(["--model", model, *extra, "--config", str(config), "--frames", "3", "--latent", "8x16",
                           "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    error = float(re.search(r"max error onnxruntime vs torch: (\S+)", out).group(1))
    assert error < 1e-4, out  # the fixtures' tolerance for a UNet call
    assert alive == [before], "the torch UNet was still alive when ONNX Runtime opened the graph"
