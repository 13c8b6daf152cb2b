"""The Geo4D VAE against the official outputs (fixture b), the real checkpoints' key layout, and
the behaviours the pipeline relies on (chunked per-frame decoding, posterior sampling, dtypes)."""

import pytest

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from engine.models.geo4d.blocks import Upsample, set_upsample  # noqa: E402
from engine.models.geo4d.checks import full_manifest  # noqa: E402
from engine.models.geo4d.checks import vae as vae_check  # noqa: E402
from engine.models.geo4d.config import model_params, vae_params  # noqa: E402
from engine.models.geo4d.checkpoint_keys import FIRST_STAGE_PREFIX, load_part  # noqa: E402
from engine.models.geo4d.device_choices import choices_for  # noqa: E402
from engine.models.geo4d.vae import AutoencoderKL, compile_vae, decode_frames, encode_frames  # noqa: E402
from tests.fixture_paths import GEO4D_FIXTURES, assert_fixture_reproduced, requires_geo4d_fixtures  # noqa: E402

pytestmark = requires_geo4d_fixtures


@pytest.fixture(scope="module")
def tiny(tiny_config):
    torch.set_num_threads(2)
    return (tiny_config, *vae_check.load_tiny_vaes(GEO4D_FIXTURES, tiny_config))


def test_fixture_b_reproduced(tiny):
    assert_fixture_reproduced(vae_check, tiny[0], 9)


def test_encode_with_recorded_posterior_noise_gives_the_e2e_condition(tiny):
    config, vae, _ = tiny
    e2e = load_file(GEO4D_FIXTURES / "e2e_window.safetensors")
    z = encode_frames(vae, e2e["video"], model_params(config)["scale_factor"], chunk=5,
                      noise=e2e["posterior_noise"])
    assert z.shape == (1, 4, 16, 4, 8)
    torch.testing.assert_close(z, e2e["z_cond"], atol=1e-4, rtol=1e-4)
    # The posterior mean is a different (noise-free) latent: the noise must matter.
    mean = encode_frames(vae, e2e["video"], model_params(config)["scale_factor"])
    assert (mean - e2e["z_cond"]).abs().max() > 1e-2


def test_chunked_decode_equals_frame_by_frame(tiny):
    _, vae, pm = tiny
    z = torch.randn(2, 4, 2, 3, 4, generator=torch.Generator().manual_seed(0))
    one = decode_frames(pm, z, 0.18215, chunk=1, with_confidence=True)
    three = decode_frames(pm, z, 0.18215, chunk=3, with_confidence=True)
    assert one.shape == (2, 4, 2, 24, 32)
    torch.testing.assert_close(three, one, atol=1e-5, rtol=1e-5)
    # Frame (b=1, t=1) is the plain decode of that frame's latent.
    torch.testing.assert_close(one[1, :, 1], pm.decode_with_confidence(z[1:2, :, 1] / 0.18215)[0],
                               atol=1e-5, rtol=1e-5)


def test_channels_last_layout_keeps_the_outputs(tiny):
    """The CPU's chosen layout (device_choices.py) and the contiguous one give the same latents and
    decodings to float rounding, and the chosen one reproduces the official decode (fixture b)."""
    config, vae, pm = tiny
    scale = model_params(config)["scale_factor"]
    fx = load_file(GEO4D_FIXTURES / "vae.safetensors")
    e2e = load_file(GEO4D_FIXTURES / "e2e_window.safetensors")
    assert choices_for("cpu").channels_last
    for channels_last in (True, False):
        z = encode_frames(vae, e2e["video"], scale, noise=e2e["posterior_noise"], channels_last=channels_last)
        torch.testing.assert_close(z, e2e["z_cond"], atol=1e-5, rtol=1e-5)
        out = decode_frames(pm, fx["scaled.z_bcthw"], scale, with_confidence=True, channels_last=channels_last)
        assert out.is_contiguous()
        torch.testing.assert_close(out, fx["scaled.decode_pm_confhead"], atol=2e-5, rtol=1e-5)


@pytest.mark.slow
def test_compiled_vae_reproduces_the_official_decode(tiny):
    """torch.compile of the VAE (a device choice, device_choices.py) changes rounding only: the compiled
    point-map decoder with its uncertainty head reproduces fixture b as eager does, and the parameters
    are the same objects (the state dict still loads and saves by the official names)."""
    config, _, pm = tiny
    fx = load_file(GEO4D_FIXTURES / "vae.safetensors")
    compiled = AutoencoderKL(vae_params(config)).eval().requires_grad_(False)
    compiled.load_state_dict(pm.state_dict())
    compile_vae(compiled)
    assert set(compiled.state_dict()) == set(pm.state_dict())
    scale = model_params(config)["scale_factor"]
    torch._dynamo.utils.counters.clear()
    eager = decode_frames(pm, fx["scaled.z_bcthw"], scale, with_confidence=True)
    out = decode_frames(compiled, fx["scaled.z_bcthw"], scale, with_confidence=True)
    torch.testing.assert_close(out, fx["scaled.decode_pm_confhead"], atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(out, eager, atol=2e-5, rtol=1e-5)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # the compiled graphs ran, not eager


def test_bfloat16_decode_tracks_float32(tiny):
    """(float16 convolutions are a GPU feature; on the CPU bfloat16 exercises the same cast path.)"""
    _, vae, _ = tiny
    dtype = torch.bfloat16
    fx = load_file(GEO4D_FIXTURES / "vae.safetensors")
    half = AutoencoderKL(vae_params(tiny[0])).to(dtype).eval()
    half.load_state_dict(vae.state_dict())
    out = decode_frames(half, fx["scaled.z_bcthw"], 0.18215)
    assert out.dtype == torch.float32
    expected = fx["scaled.decode_first_stage"]
    rel = (out - expected).norm() / expected.norm()
    assert rel < 0.05, float(rel)


def test_full_size_manifest_every_key_and_shape():
    """The real config builds exactly the tensors of model.ckpt (all parts) and vae.ckpt."""
    results = full_manifest.run(GEO4D_FIXTURES, None)
    assert [r.name for r in results if not r.ok] == []
    assert results[-1].name == "manifest model.ckpt keys covered: 2554/2554"
    assert any("first_stage_model.: all 282 keys" in r.name for r in results)
    assert any("vae.ckpt model.: all 282 keys" in r.name for r in results)


def test_missing_tensor_is_refused(tiny):
    config = tiny[0]
    weights = load_file(GEO4D_FIXTURES / "tiny_weights.safetensors")
    del weights[FIRST_STAGE_PREFIX + "decoder_adaptor.conv_out.weight"]
    with pytest.raises(RuntimeError, match="decoder_adaptor.conv_out.weight"):
        load_part(AutoencoderKL(vae_params(config)), weights, FIRST_STAGE_PREFIX)


class _Decode(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return self.vae.decode_with_confidence(z)


class _Encode(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, x):
        posterior = self.vae.encode(x)
        return posterior.mean, posterior.std


def test_onnx_export_runs_in_onnxruntime_at_other_sizes(tiny, tmp_path):
    """Encoder and decoder export with dynamic batch and size (plain reshape/permute/SDPA) and
    ONNX Runtime agrees with torch at a size other than the traced one."""
    import warnings

    import onnxruntime as ort

    _, vae, pm = tiny
    gen = torch.Generator().manual_seed(1)
    cases = [(_Decode(pm), torch.randn(1, 4, 4, 6, generator=gen), torch.randn(3, 4, 5, 8, generator=gen)),
             (_Encode(vae), torch.randn(1, 3, 32, 48, generator=gen), torch.randn(2, 3, 40, 64, generator=gen))]
    for i, (module, traced, other) in enumerate(cases):
        path = tmp_path / f"part{i}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (traced,), str(path), dynamo=False, opset_version=17, input_names=["x"],
                              dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs = session.run(None, {"x": other.numpy()})
        with torch.no_grad():
            expected = module(other)
        expected = expected if isinstance(expected, tuple) else (expected,)
        assert len(outputs) == len(expected)
        for ours, ref in zip(outputs, expected):
            assert ours.shape == tuple(ref.shape)
            torch.testing.assert_close(torch.from_numpy(ours), ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("channels_last", [True, False])
def test_phase_conv_upsample_is_nearest_then_conv(channels_last):
    """The Upsample's "phase_conv" (four output phases as one 2x2 conv of the low-resolution input) is
    nearest x2 then the 3x3 conv, at odd sizes and both layouts; its kernels follow a new load of the weights,
    and the state dict keeps the official key only."""
    gen = torch.Generator().manual_seed(3)
    up = Upsample(32).eval()
    assert list(up.state_dict()) == ["conv.weight", "conv.bias"]
    x = torch.randn(2, 32, 5, 7, generator=gen)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    for _ in range(2):
        with torch.no_grad():
            expected = F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), up.conv.weight, up.conv.bias,
                                padding=1)
            set_upsample(up, "phase_conv")
            out = up(x)
        assert out.shape == (2, 32, 10, 14)
        assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
        up.load_state_dict({"conv.weight": torch.randn(32, 32, 3, 3, generator=gen) * 0.06,  # init scale
                            "conv.bias": torch.randn(32, generator=gen)})
    with pytest.raises(ValueError, match="nearest_conv, phase_conv"):
        set_upsample(up, "bilinear")


def test_phase_conv_decode_reproduces_the_official_decode(tiny):
    """The CPU's chosen Upsample (device_choices.py) and the written one both reproduce fixture b's
    point-map decode with the uncertainty head."""
    config, _, pm = tiny
    scale = model_params(config)["scale_factor"]
    fx = load_file(GEO4D_FIXTURES / "vae.safetensors")
    assert choices_for("cpu").upsample == "phase_conv"
    for mode in ("phase_conv", "nearest_conv"):
        out = decode_frames(pm, fx["scaled.z_bcthw"], scale, with_confidence=True, upsample=mode)
        assert all(up.mode == mode for up in pm.modules() if isinstance(up, Upsample))
        torch.testing.assert_close(out, fx["scaled.decode_pm_confhead"], atol=2e-5, rtol=1e-5)
