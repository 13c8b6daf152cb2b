"""GeometryCrafter's UNet in ONNX Runtime (CPU provider) agrees with the official fixtures and with the torch
UNet (tiny fixture model, both variants, float32).

Tolerance: the fixtures' 1e-4 for stages replayed from stored inputs (atol = rtol), the README's; ONNX Runtime's
kernels sum in another order than torch's."""

from __future__ import annotations

import pytest

from tests.needs import torch_or_skip

torch_or_skip()
pytest.importorskip("onnxruntime")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from engine.models.geometrycrafter.checks import ATOL  # noqa: E402
from engine.models.geometrycrafter.checks.unet_forward import FIXTURE, load_tiny_unet  # noqa: E402
from engine.models.geometrycrafter.config import load_config  # noqa: E402
from engine.models.geometrycrafter.denoise import DETERM_TIMESTEP, added_time_ids  # noqa: E402
from engine.models.geometrycrafter.onnx_unet import OnnxSpatioTemporalUNet, export_unet  # noqa: E402
from tests.fixture_paths import GEOMETRYCRAFTER_FIXTURES as FOLDER  # noqa: E402
from tests.fixture_paths import requires_geometrycrafter_fixtures  # noqa: E402

pytestmark = requires_geometrycrafter_fixtures


@pytest.fixture(scope="module", params=["diff", "determ"])
def unets(request, tmp_path_factory):
    """(variant, torch UNet, ONNX Runtime UNet exported from it)."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    unet = load_tiny_unet(FOLDER, load_config(FOLDER / "tiny_config.json"), request.param)
    path = export_unet(unet, tmp_path_factory.mktemp("onnx") / "unet-float32.onnx")
    return request.param, unet, OnnxSpatioTemporalUNet(path, "cpu")


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=ATOL)


def test_onnx_unet_reproduces_the_official_fixture(unets):
    variant, _, onnx_unet = unets
    data = load_file(FOLDER / FIXTURE)
    cases = ["determ"] if variant == "determ" else ["caseA", "caseB"]
    for case in cases:
        out = onnx_unet(data[f"{case}.sample"], data[f"{case}.timestep"], data[f"{case}.encoder_hidden_states"],
                        data[f"{case}.added_time_ids"])
        assert_close(out, data[f"{case}.out"])
        assert out.abs().max() > 0.1  # the fixture's output is not near zero


@pytest.mark.parametrize("batch, frames, latent", [(1, 7, (16, 16)), (2, 2, (8, 8))])
def test_onnx_unet_equals_torch_at_other_sizes(unets, batch, frames, latent):
    """The graph's batch, frame and latent axes are dynamic (it was traced at 1 x 3 frames x 8x16)."""
    _, unet, onnx_unet = unets
    generator = torch.Generator().manual_seed(frames)
    sample = torch.randn(batch, frames, unet.conv_in.in_channels, *latent, generator=generator)
    context = torch.randn(batch, frames, 32, generator=generator)
    ids = added_time_ids().expand(batch, 3)
    with torch.no_grad():
        expected = unet(sample, DETERM_TIMESTEP, context, ids)
    assert_close(onnx_unet(sample, DETERM_TIMESTEP, context, ids), expected)
