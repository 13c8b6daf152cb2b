"""The Geo4D UNet and Resampler against the official implementation's golden fixtures
(../shared/fixtures/geo4d: tiny random-weight model) and the full-size checkpoint manifest."""

from __future__ import annotations

import json
import math
import weakref

import pytest

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from engine.errors import InputError, ModelError  # noqa: E402
from engine.models.geo4d.checks import ATOL_UNET, resampler as resampler_check, unet_forward  # noqa: E402
from engine.models.geo4d.config import unet_params  # noqa: E402
from engine.models.geo4d import onednn  # noqa: E402
from engine.models.geo4d.manifest import check_manifest_part, full_size_parts  # noqa: E402
from engine.models.geo4d.resampler import Resampler  # noqa: E402
from engine.models.geo4d.attention import (CrossAttention, FeedForward, RelativePosition, SpatialTransformer,  # noqa: E402
                                           TemporalTransformer, multi_head_attention, relative_position_attention)
from engine.models.geo4d.blocks import Downsample, ResBlock, TemporalConvBlock, Upsample  # noqa: E402
from engine.models.geo4d.unet import UNet3D  # noqa: E402
from tests.fixture_paths import GEO4D_FIXTURES, assert_fixture_reproduced, requires_geo4d_fixtures  # noqa: E402

FIXTURES = GEO4D_FIXTURES
pytestmark = requires_geo4d_fixtures


@pytest.fixture(scope="module")
def unet(tiny_config):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return unet_forward.load_tiny_unet(FIXTURES, tiny_config)


@pytest.fixture(scope="module")
def case_a():
    data = load_file(FIXTURES / unet_forward.FIXTURE)
    return {k.split(".", 1)[1]: v for k, v in data.items() if k.startswith("caseA.")}


def test_unet_reproduces_official_forward_and_intermediates(tiny_config):
    results = assert_fixture_reproduced(unet_forward, tiny_config, 14)
    names = {r.name for r in results}
    assert {"caseA.out", "caseB.out", "caseA.after_init_attn", "caseB.middle_block_out"} <= names
    assert all(r.tolerance == ATOL_UNET for r in results)


def test_resampler_reproduces_official_output(tiny_config):
    [result] = resampler_check.run(FIXTURES, tiny_config)
    assert result.ok, result


def test_full_size_unet_and_resampler_match_the_checkpoint_manifest():
    manifest = json.loads((FIXTURES / "full_manifest.json").read_text())
    for prefix, module in full_size_parts().items():
        report = check_manifest_part(manifest, prefix, module)
        assert report.ok, report.summary()
    numel = sum(p.numel() for p in full_size_parts()["model.diffusion_model."].parameters())
    assert numel == manifest["model_ckpt"]["numel_per_prefix_state_dict"]["model.diffusion_model."]


def test_manifest_check_names_what_differs(tiny_config):
    manifest = json.loads((FIXTURES / "full_manifest.json").read_text())
    with torch.device("meta"):
        tiny = UNet3D.from_params(unet_params(tiny_config))
    report = check_manifest_part(manifest, "model.diffusion_model.", tiny)
    assert not report.ok
    # The tiny UNet has 1 res-block per level and 3 levels: the real one's extra blocks are missing.
    assert "output_blocks.11.0.in_layers.0.weight" in report.missing
    assert ("time_embed.0.weight", (128, 32), (1280, 320)) in report.shape_mismatches
    report = check_manifest_part(manifest, "image_proj_model.", torch.nn.Linear(2, 2))
    assert report.extra == ["bias", "weight"] and len(report.missing) == 51


@torch.no_grad()
def test_batched_clips_equal_separate_calls(unet, case_a):
    """The fixtures have one clip; two different clips in one batch must not mix."""
    x, context = case_a["x_in"], case_a["context"]
    x2, context2 = x.flip(3), context.roll(5, dims=1)
    t2, fs2 = torch.tensor([0]), torch.tensor([7])
    batched = unet(torch.cat([x, x2]), torch.cat([case_a["t"], t2]), torch.cat([context, context2]),
                   torch.cat([case_a["fs"], fs2]))
    torch.testing.assert_close(batched[:1], case_a["out"], atol=ATOL_UNET, rtol=ATOL_UNET)
    torch.testing.assert_close(batched[1:], unet(x2, t2, context2, fs2), atol=ATOL_UNET, rtol=ATOL_UNET)


@torch.no_grad()
def test_context_projected_once_serves_every_call(unet, case_a):
    """The keys and values of the constant context, projected once (batch 1), give the official outputs
    in calls at other timesteps and batches, as the tokens themselves do."""
    x, t, context, fs = case_a["x_in"], case_a["t"], case_a["context"], case_a["fs"]
    frames = x.shape[2]
    projected = unet.project_context(context, frames)
    assert len(projected.layers) == sum(len(m.transformer_blocks) for m in unet.modules()
                                        if type(m).__name__ == "SpatialTransformer")
    text_k = next(iter(projected.layers.values())).text_k
    assert text_k.shape[:3] == (1, 1, 77)  # projected once per clip, not per frame
    torch.testing.assert_close(unet(x, t, projected, fs), case_a["out"], atol=ATOL_UNET, rtol=ATOL_UNET)
    x2, t2 = x.flip(3), torch.tensor([0])
    batched = unet(torch.cat([x, x2]), torch.cat([t, t2]), projected, fs.expand(2))
    torch.testing.assert_close(batched[:1], case_a["out"], atol=ATOL_UNET, rtol=ATOL_UNET)
    torch.testing.assert_close(batched[1:], unet(x2, t2, context, fs), atol=ATOL_UNET, rtol=ATOL_UNET)
    with pytest.raises(InputError, match="projected for 1 clip"):
        unet(x[:, :, :8], t, projected, fs)


@torch.no_grad()
def test_per_frame_timesteps_and_default_fs(unet, case_a):
    x, t, context = case_a["x_in"], case_a["t"], case_a["context"]
    per_frame = unet(x, t.expand(1, x.shape[2]).contiguous(), context, case_a["fs"])
    torch.testing.assert_close(per_frame, case_a["out"], atol=ATOL_UNET, rtol=ATOL_UNET)
    assert case_a["fs"].item() == unet.default_fs == 24
    torch.testing.assert_close(unet(x, t, context), case_a["out"], atol=ATOL_UNET, rtol=ATOL_UNET)


@torch.no_grad()
def test_each_frame_sees_its_own_image_tokens(unet, case_a):
    x, t, context, fs = case_a["x_in"], case_a["t"], case_a["context"], case_a["fs"]
    frame = 5
    changed = context.clone()
    changed[:, 77 + 16 * frame:77 + 16 * (frame + 1)] += 1.0
    delta = (unet(x, t, changed, fs) - case_a["out"]).abs().mean(dim=(0, 1, 3, 4))  # per frame
    assert delta.argmax().item() == frame
    assert delta[frame] > 2 * delta[[f for f in range(len(delta)) if f != frame]].max()


@torch.no_grad()
def test_shorter_window_and_shared_context(unet, case_a):
    """A window of 8 frames gets 77 + 16*8 tokens split per frame; a context of any other length
    is shared by all frames."""
    x, t, context, fs = case_a["x_in"][:, :, :8], case_a["t"], case_a["context"], case_a["fs"]
    out = unet(x, t, context[:, :77 + 16 * 8], fs)
    assert out.shape == (1, 16, 8, 8, 12) and torch.isfinite(out).all()
    per_frame = unet.frame_context(context[:, :77 + 16 * 8], 8)
    torch.testing.assert_close(per_frame[3, 77:], context[0, 77 + 48:77 + 64])
    shared = unet.frame_context(context[:, :93], 8)
    assert shared.shape == (8, 93, 16) and torch.equal(shared[7], context[0, :93])
    # The projected context's per-frame layout is that of frame_context.
    for layer, keys_values in unet.project_context(context[:, :77 + 16 * 8], 8).per_frame(1, 8).items():
        torch.testing.assert_close(keys_values.image_k, layer.to_k_ip(per_frame[:, 77:]))
        torch.testing.assert_close(keys_values.text_v, layer.to_v(per_frame[:, :77]))
    for layer, keys_values in unet.project_context(context[:, :93], 8).per_frame(1, 8).items():
        torch.testing.assert_close(keys_values.image_v, layer.to_v_ip(shared[:, 77:]))
    with pytest.raises(InputError, match="only the 77 text tokens"):  # no image tokens: refused, not a crash
        unet(x, t, context[:, :77], fs)


@pytest.mark.parametrize("relative_length", [None, 4])
@torch.no_grad()
def test_attention_lets_go_of_keys_and_values_before_its_output_projection(relative_length):
    """Held through the output projection, a layer's keys and values added 0.6 GB to GeometryCrafter's predicted
    diffusion peak at 576x1024 (12.85 -> 13.44 GB, `bench memory --model geometrycrafter`)."""
    layer = CrossAttention(64, None, 4, 16, relative_length=relative_length)
    made, alive = [], []
    for projection in (layer.to_k, layer.to_v):
        projection.register_forward_hook(lambda module, args, out: made.append(weakref.ref(out)))
    layer.to_out.register_forward_pre_hook(lambda module, args: alive.append([ref() is not None for ref in made]))
    layer(torch.randn(2, 16, 64))
    assert alive == [[False, False]]


@torch.no_grad()
def test_feed_forward_in_parts_gives_the_whole_calls_values_with_a_bounded_peak():
    """FeedForward runs at most max_tokens tokens at a time: the same values (each token's output is its own), its
    8x-wide hidden activations a part's size. At 320x512 that took the UNet's predicted peak from 7.48 to 6.86 GB
    in fp32 (`bench memory`)."""
    from engine.bench.memory import StorageTracker

    torch.manual_seed(0)
    ff = FeedForward(32, max_tokens=4096).eval()
    x = torch.randn(3, 7000, 32)  # 21000 tokens: five parts, the last one partial

    def peak(call) -> int:
        tracker = StorageTracker(x.device)
        with tracker:
            tracker.reset_peak()
            call()
        return tracker.peak - tracker.live

    assert torch.equal(ff(x), ff.net(x))
    assert peak(lambda: ff(x)) < peak(lambda: ff.net(x)) / 2
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the parts' dtype, not the input's
        parts, whole = ff(x), ff.net(x)
    assert parts.dtype == whole.dtype == torch.bfloat16 and torch.equal(parts, whole)


def _four_frames(case: dict) -> tuple:
    """The first 4 frames of a fixture case (half precision is slow on the CPU)."""
    return case["x_in"][:, :, :4], case["t"], case["context"][:, :77 + 16 * 4], case["fs"]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@torch.no_grad()
def test_half_precision_runs_close_to_float32(unet, case_a, dtype, tiny_config):
    x, t, context, fs = _four_frames(case_a)
    reference = unet(x, t, context, fs)
    half = unet_forward.load_tiny_unet(FIXTURES, tiny_config).to(dtype)
    out = half(x.to(dtype), t, context.to(dtype), fs)
    assert out.dtype == dtype
    error = (out.float() - reference).abs().max() / reference.abs().max()
    assert error < 0.05, error


@torch.no_grad()
def test_autocast_bfloat16_on_float32_weights(unet, case_a):
    x, t, context, fs = _four_frames(case_a)
    reference = unet(x, t, context, fs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = unet(x, t, context, fs)
    error = (out.float() - reference).abs().max() / reference.abs().max()
    assert error < 0.05, error


def test_unsupported_configuration_is_refused(tiny_config):
    params = dict(unet_params(tiny_config), dims=3)
    with pytest.raises(ModelError, match="dims"):
        UNet3D.from_params(params)
    with pytest.raises(ModelError, match="does not know: num_classes"):
        UNet3D.from_params(dict(unet_params(tiny_config), num_classes=10))


@torch.no_grad()
def test_scale_shift_norm_modulates_the_normalised_features(tiny_config):
    """use_scale_shift_norm (official ResBlock): the time embedding gives a scale and a shift (twice the
    output channels) applied as norm(h) * (1 + scale) + shift before the rest of out_layers."""
    params = unet_params(tiny_config)
    plain, film = UNet3D.from_params(params), UNet3D.from_params(dict(params, use_scale_shift_norm=True))
    assert film.state_dict().keys() == plain.state_dict().keys()
    assert film.input_blocks[1][0].emb_layers[1].weight.shape == (2 * 32, 4 * 32)
    assert film.output_blocks[0][0].emb_layers[1].weight.shape == (2 * 64, 4 * 32)

    generator = torch.Generator().manual_seed(0)
    block = ResBlock(32, 8, 0.0, scale_shift_norm=True).eval()
    for weight in block.parameters():
        weight.copy_(torch.randn(weight.shape, generator=generator) * 0.3)
    x, emb = torch.randn(2, 32, 4, 4, generator=generator), torch.randn(2, 8, generator=generator)
    block.emb_layers[1].weight.zero_()
    # Scale -1 zeroes the normalised features: out_layers' conv sees zeros and adds only its bias.
    block.emb_layers[1].bias.copy_(torch.cat([-torch.ones(32), torch.zeros(32)]))
    expected = x + block.out_layers[3].bias[:, None, None]
    assert torch.allclose(block(x, emb, 2), expected, atol=1e-6)
    # Scale and shift 0: the block is a plain ResBlock whose embedding adds nothing.
    block.emb_layers[1].bias.zero_()
    additive = ResBlock(32, 8, 0.0).eval()
    additive.load_state_dict({k: v[:32] if k.startswith("emb_layers") else v for k, v in block.state_dict().items()})
    assert (block(x, emb, 2) - x).abs().max() > 0.1
    assert torch.equal(block(x, emb, 2), additive(x, emb, 2))


@torch.no_grad()
def test_learnable_image_cross_attention_scale(tiny_config, unet, case_a):
    """image_cross_attention_scale_learnable (official CrossAttention): a scalar `alpha` (initialised 0)
    on each image cross-attention scales the image tokens' attention by tanh(alpha) + 1."""
    params = dict(unet_params(tiny_config), image_cross_attention_scale_learnable=True)
    learnable = UNet3D.from_params(params).eval()
    missing, unexpected = learnable.load_state_dict(unet.state_dict(), strict=False)
    assert not unexpected and missing and all(k.endswith(".attn2.alpha") for k in missing)
    spatial_layers = [m for m in learnable.modules() if isinstance(m, SpatialTransformer)]
    assert len(missing) == len(spatial_layers) and learnable.get_parameter(missing[0]).shape == ()
    x, t, context, fs = case_a["x_in"], case_a["t"], case_a["context"], case_a["fs"]
    assert torch.equal(learnable(x, t, context, fs), unet(x, t, context, fs))  # alpha 0: scale 1

    generator = torch.Generator().manual_seed(0)
    layer = CrossAttention(16, 8, 2, 8, image_cross_attention=True, image_scale_learnable=True)
    query, tokens = torch.randn(3, 5, 16, generator=generator), torch.randn(3, 77 + 4, 8, generator=generator)
    outputs = {}
    for scale in (0.0, 1.0, 1.5):  # tanh(alpha) + 1
        layer.alpha.fill_(-20.0 if scale == 0.0 else math.atanh(scale - 1))
        outputs[scale] = layer(query, tokens)
    # Scale 0 ignores the image tokens; the output is affine in the scale.
    assert torch.equal(outputs[0.0], layer(query, torch.cat([tokens[:, :77], 0 * tokens[:, 77:]], dim=1)))
    assert (outputs[1.0] - outputs[0.0]).abs().max() > 0.1
    assert torch.allclose(outputs[1.5], outputs[1.0] + 0.5 * (outputs[1.0] - outputs[0.0]), atol=1e-6)


@torch.no_grad()
def test_causal_temporal_attention(tiny_config, unet, case_a):
    """use_causal_attention (official TemporalTransformer): frame i attends to frames 0..i in both attentions
    of every temporal block except init_attn's; the mask is temporal_length square and holds no weights."""
    params = dict(unet_params(tiny_config), use_causal_attention=True)
    causal = UNet3D.from_params(params).eval()
    causal.load_state_dict(unet.state_dict())  # strict: same keys
    temporal = [m for m in causal.modules() if isinstance(m, TemporalTransformer) and m is not causal.init_attn[0]]
    assert causal.init_attn[0].causal_length is None and {m.causal_length for m in temporal} == {16}
    x, t, context, fs = case_a["x_in"], case_a["t"], case_a["context"], case_a["fs"]
    assert (causal(x, t, context, fs) - unet(x, t, context, fs)).abs().max() > 1e-3
    long_clip = torch.cat([x, x[:, :, :1]], dim=2)  # 17 frames
    with pytest.raises(InputError, match="17 frames"):
        causal(long_clip, t, context[:, :77 + 16], fs)
    with pytest.raises(ModelError, match="use_causal_attention without temporal_length"):
        UNet3D.from_params(dict(params, temporal_length=None))

    # A block's first k outputs are those of the sequence cut to its first k positions (and only then).
    block = temporal[0].transformer_blocks[0]
    y = torch.randn(6, 16, block.norm1.normalized_shape[0], generator=torch.Generator().manual_seed(0))
    full = block(y, causal=True)
    for k in (1, 5, 16):
        assert torch.allclose(full[:, :k], block(y[:, :k], causal=True), atol=1e-6)
    assert (block(y)[:, :5] - full[:, :5]).abs().max() > 1e-2


@torch.no_grad()
def test_resblock_updown_resizes_inside_residual_blocks(tiny_config, case_a):
    """resblock_updown (official UNetModel): each Downsample/Upsample is a ResBlock (same width, no temporal
    conv) that average-pools / nearest-doubles both paths, the main one between its first SiLU and conv."""
    params = dict(unet_params(tiny_config), resblock_updown=True)
    unet = UNet3D.from_params(params).eval()
    keys = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    for block in ("input_blocks.2.0", "input_blocks.4.0", "output_blocks.1.1", "output_blocks.3.3"):
        assert keys[f"{block}.in_layers.2.weight"] == keys[f"{block}.out_layers.3.weight"]
        assert not any(k.startswith((f"{block}.temopral_conv", f"{block}.skip", f"{block}.op")) for k in keys)
    assert keys["output_blocks.1.1.in_layers.2.weight"] == (64, 64, 3, 3)
    assert not any(k.endswith((".op.weight", ".conv.weight")) for k in keys)
    x, t, context, fs = case_a["x_in"], case_a["t"], case_a["context"], case_a["fs"]
    assert unet(x, t, context, fs).shape == x[:, :16].shape

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 32, 4, 6, generator=generator)
    emb = torch.randn(2, 8, generator=generator)
    down = ResBlock(32, 8, 0.0, resample=torch.nn.AvgPool2d(2)).eval()
    up = ResBlock(32, 8, 0.0, resample=torch.nn.Upsample(scale_factor=2, mode="nearest")).eval()
    plain = ResBlock(32, 8, 0.0).eval()
    for weight in plain.parameters():
        weight.copy_(torch.randn(weight.shape, generator=generator) * 0.3)
    down.load_state_dict(plain.state_dict())
    up.load_state_dict(plain.state_dict())
    # Nearest doubling keeps GroupNorm's statistics: the up block is the plain block on the doubled input.
    doubled = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
    assert torch.allclose(up(x, emb, 2), plain(doubled, emb, 2), atol=1e-5)
    assert down(x, emb, 2).shape == (2, 32, 2, 3)
    # With the residual branch's last conv zeroed, the down block is the average pool of its input.
    down.out_layers[3].weight.zero_()
    down.out_layers[3].bias.zero_()
    assert torch.equal(down(x, emb, 2), torch.nn.functional.avg_pool2d(x, 2))


@torch.no_grad()
def test_without_conv_resample_the_unet_only_pools_and_doubles(tiny_config, unet, case_a):
    """conv_resample False (official Downsample/Upsample with use_conv False): a 2x2 average pool and a
    nearest x2, without weights. Known answer: the conv layers set to compute exactly these (a stride-2
    3x3 conv with 1/4 on its lower-right 2x2 taps; an identity 3x3 conv) give the same UNet."""
    params = unet_params(tiny_config)
    plain = UNet3D.from_params(dict(params, conv_resample=False)).eval()
    missing, unexpected = plain.load_state_dict(unet.state_dict(), strict=False)
    assert not missing and len(unexpected) == 8  # two Downsample `op` and two Upsample `conv`, weight and bias
    assert all(k.endswith((".op.weight", ".op.bias", ".conv.weight", ".conv.bias")) for k in unexpected)

    convs = UNet3D.from_params(params).eval()
    convs.load_state_dict(unet.state_dict())
    for module in convs.modules():
        conv = module.op if isinstance(module, Downsample) else module.conv if isinstance(module, Upsample) else None
        if conv is not None:
            conv.weight.zero_()
            conv.bias.zero_()
            for c in range(conv.weight.shape[0]):
                if isinstance(module, Downsample):
                    conv.weight[c, c, 1:, 1:] = 0.25
                else:
                    conv.weight[c, c, 1, 1] = 1.0
    x, t, context, fs = case_a["x_in"], case_a["t"], case_a["context"], case_a["fs"]
    out = plain(x, t, context, fs)
    assert torch.allclose(out, convs(x, t, context, fs), atol=1e-5)
    assert (out - unet(x, t, context, fs)).abs().max() > 1e-2


@torch.no_grad()
def test_relative_position_temporal_attention(tiny_config, unet, case_a):
    """use_relative_position (official; true unless set): both attentions of every temporal block, init_attn's
    included, learn tables [2 L + 1, head width] (L = temporal_length) of the clamped frame offset j - i,
    added to query i's key for frame j and to its value."""
    params = unet_params(tiny_config)
    omitted = {k: v for k, v in params.items() if k != "use_relative_position"}
    relative = UNet3D.from_params(omitted).eval()
    tables = {k: tuple(v.shape) for k, v in relative.state_dict().items() if "relative_position" in k}
    temporal = [n for n, m in relative.named_modules() if isinstance(m, TemporalTransformer)]
    assert "init_attn.0" in temporal
    assert tables == {f"{n}.transformer_blocks.0.attn{a}.relative_position_{kv}.embeddings_table": (33, 16)
                      for n in temporal for a in (1, 2) for kv in "kv"}
    missing, unexpected = relative.load_state_dict(unet.state_dict(), strict=False)
    assert set(missing) == set(tables) and not unexpected
    x, t, context, fs = case_a["x_in"], case_a["t"], case_a["context"], case_a["fs"]
    assert torch.allclose(relative(x, t, context, fs), unet(x, t, context, fs), atol=1e-5)  # zero tables
    with pytest.raises(ModelError, match="without temporal_length"):
        UNet3D.from_params(dict(omitted, temporal_length=None))

    lookup = RelativePosition(1, 2)
    lookup.embeddings_table.copy_(torch.arange(5.0)[:, None])
    assert lookup(4, 4)[..., 0].tolist() == [[2, 3, 4, 4], [1, 2, 3, 4], [0, 1, 2, 3], [0, 0, 1, 2]]
    assert lookup(2, 5)[..., 0].tolist() == [[2, 3, 4, 4, 4], [1, 2, 3, 4, 4]]  # queries to text tokens

    # Tables constant over the offsets: the key term shifts each query's logits alike (the weights stay),
    # the value term adds that constant to every output.
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 6, 2 * 8, generator=generator) for _ in range(3))
    value = torch.randn(8, generator=generator)
    constant_k = torch.randn(8, generator=generator).expand(6, 6, 8)
    for causal in (False, True):
        out = relative_position_attention(q, k, v, 2, constant_k, value.expand(6, 6, 8), causal)
        expected = multi_head_attention(q, k, v, 2, causal) + value.repeat(2)
        assert torch.allclose(out, expected, atol=1e-5)
    varying = torch.randn(6, 6, 8, generator=generator)
    assert (relative_position_attention(q, k, v, 2, varying, 0 * varying) - multi_head_attention(q, k, v, 2)
            ).abs().max() > 1e-2


@torch.no_grad()
def test_spatially_aware_temporal_convolution(tiny_config):
    """tempspatial_aware (official TemporalConvBlock spatial_aware): layers 1 and 3 convolve time and height
    (3x3x1), layers 2 and 4 time and width (3x1x3). Known answer: with only the spatial centre taps set, the
    block is the plain 3x1x1 one."""
    params = dict(unet_params(tiny_config), tempspatial_aware=True)
    keys = {k: tuple(v.shape) for k, v in UNet3D.from_params(params).state_dict().items()}
    plain_keys = {k: tuple(v.shape) for k, v in UNet3D.from_params(unet_params(tiny_config)).state_dict().items()}
    assert keys.keys() == plain_keys.keys()
    assert keys["input_blocks.1.0.temopral_conv.conv1.2.weight"] == (32, 32, 3, 3, 1)
    assert keys["input_blocks.1.0.temopral_conv.conv2.3.weight"] == (32, 32, 3, 1, 3)
    assert keys["middle_block.0.temopral_conv.conv3.3.weight"] == (64, 64, 3, 3, 1)
    assert keys["output_blocks.0.0.temopral_conv.conv4.3.weight"] == (64, 64, 3, 1, 3)

    generator = torch.Generator().manual_seed(0)
    plain, aware = TemporalConvBlock(32).eval(), TemporalConvBlock(32, spatial_aware=True).eval()
    for weight in plain.parameters():
        weight.copy_(torch.randn(weight.shape, generator=generator) * 0.2)
    state = plain.state_dict()
    for name, weight in aware.state_dict().items():
        if weight.dim() == 5:
            centre = weight.zero_()[:, :, :, weight.shape[3] // 2:weight.shape[3] // 2 + 1,
                                    weight.shape[4] // 2:weight.shape[4] // 2 + 1]
            centre.copy_(state[name])
        else:
            weight.copy_(state[name])
    x = torch.randn(2, 32, 5, 4, 6, generator=generator)
    assert torch.allclose(aware(x), plain(x), atol=1e-5)
    aware.conv1[2].weight[:, :, :, 0] += 0.1  # a tap one row up
    assert (aware(x) - plain(x)).abs().max() > 1e-2


@torch.no_grad()
def test_temporal_selfatt_only_false_gives_init_attn_the_text(tiny_config, unet, case_a):
    """The official UNetModel's own temporal layers are self-attention whatever temporal_selfatt_only says;
    only init_attn (addition_attention) reads it: false there makes its blocks' second attention attend to
    each clip's text tokens (keys from context_dim), for h*w a multiple of the frames."""
    params = unet_params(tiny_config)
    x, t, context, fs = case_a["x_in"], case_a["t"], case_a["context"], case_a["fs"]
    no_init = dict(params, addition_attention=False)
    state = {k: v for k, v in unet.state_dict().items() if not k.startswith("init_attn.")}
    unset, plain = (UNet3D.from_params(p).eval() for p in (dict(no_init, temporal_selfatt_only=False), no_init))
    unset.load_state_dict(state)
    plain.load_state_dict(state)
    assert torch.equal(unset(x, t, context, fs), plain(x, t, context, fs))

    cross = UNet3D.from_params(dict(params, temporal_selfatt_only=False)).eval()
    attn2 = cross.init_attn[0].transformer_blocks[0].attn2
    assert attn2.to_k.weight.shape == attn2.to_v.weight.shape == (8 * 16, 16)  # 8 heads of 16, context 16
    text_kv = [f"init_attn.0.transformer_blocks.0.attn2.to_{kv}.weight" for kv in "kv"]
    missing, _ = cross.load_state_dict({k: v for k, v in unet.state_dict().items() if k not in text_kv}, strict=False)
    assert sorted(missing) == text_kv
    generator = torch.Generator().manual_seed(0)
    for weight in (attn2.to_k.weight, attn2.to_v.weight):
        weight.copy_(torch.randn(weight.shape, generator=generator) / 4)
    # Two clips with different text in one batch: each clip's pixels see its own text.
    x2, context2, t2, fs2 = x.flip(3), context.roll(5, dims=1), torch.tensor([0]), torch.tensor([7])
    batched = cross(torch.cat([x, x2]), torch.cat([t, t2]), torch.cat([context, context2]), torch.cat([fs, fs2]))
    assert torch.allclose(batched[:1], cross(x, t, context, fs), atol=1e-5)
    assert torch.allclose(batched[1:], cross(x2, t2, context2, fs2), atol=1e-5)
    assert (batched[:1] - unet(x, t, context, fs)).abs().max() > 1e-2
    # Without its output projection, the text attention adds nothing: the self-attention-only network.
    attn2.to_out[0].weight.zero_()
    attn2.to_out[0].bias.zero_()
    plain = UNet3D.from_params(params).eval()
    plain.load_state_dict(unet.state_dict())
    plain.init_attn[0].transformer_blocks[0].attn2.to_out[0].weight.zero_()
    plain.init_attn[0].transformer_blocks[0].attn2.to_out[0].bias.zero_()
    assert torch.equal(cross(x, t, context, fs), plain(x, t, context, fs))
    with pytest.raises(InputError, match="multiple of the frames"):
        cross(x[:, :, :10], t, context[:, :90], fs)  # 8x12 latent, 10 frames


@torch.no_grad()
def test_num_heads_is_read_as_the_official_unet_reads_it(tiny_config, unet, case_a):
    """The official UNetModel: num_head_channels, when set, fixes the head width and num_heads is
    ignored; without it, num_heads fixes the head count at every level (width ch // num_heads), and
    init_attn (addition_attention), whose head width is num_head_channels, cannot be built."""
    params = unet_params(tiny_config)
    x, t, context, fs = case_a["x_in"], case_a["t"], case_a["context"], case_a["fs"]
    both = UNet3D.from_params(dict(params, num_heads=3))
    both.load_state_dict(unet.state_dict())
    assert torch.equal(both.eval()(x, t, context, fs), unet(x, t, context, fs))

    heads_only = dict(params, num_head_channels=-1, num_heads=2, addition_attention=False)
    attentions = [m for m in UNet3D.from_params(heads_only).modules() if isinstance(m, CrossAttention)]
    assert attentions and {m.heads for m in attentions} == {2}  # levels of 32 and 64 channels alike
    # One width (32) at every level: 2 heads are the same network as 16-channel heads.
    flat = dict(params, channel_mult=[1, 1, 1], addition_attention=False)
    by_heads = UNet3D.from_params(dict(flat, num_head_channels=-1, num_heads=2)).eval()
    by_width = UNet3D.from_params(flat).eval()
    generator = torch.Generator().manual_seed(0)
    for weight in by_heads.parameters():
        weight.copy_(torch.randn(weight.shape, generator=generator) / max(1, weight[0].numel()) ** 0.5)
    by_width.load_state_dict(by_heads.state_dict())
    out = by_heads(x, t, context, fs)
    assert out.std() > 0.1
    assert torch.equal(out, by_width(x, t, context, fs))
    # 4 heads of 8 channels at the first level differ from 2 of 16.
    four = UNet3D.from_params(dict(flat, num_head_channels=-1, num_heads=4)).eval()
    four.load_state_dict(by_heads.state_dict())
    assert (four(x, t, context, fs) - out).abs().max() > 1e-3

    with pytest.raises(ModelError, match="addition_attention without num_head_channels"):
        UNet3D.from_params(dict(params, num_head_channels=-1, num_heads=2))
    with pytest.raises(ModelError, match="neither num_head_channels nor num_heads"):
        UNet3D.from_params(dict(params, num_head_channels=-1))


def test_resampler_refuses_per_frame_input():
    resampler = Resampler(dim=32, depth=1, dim_head=8, heads=2, num_queries=4, embedding_dim=8, output_dim=16,
                          video_length=2)
    assert resampler(torch.zeros(1, 5, 8)).shape == (1, 8, 16)
    with pytest.raises(InputError, match="expected \\[batch, tokens, channels\\]"):
        resampler(torch.zeros(1, 2, 5, 8))


@torch.no_grad()
def test_float32_cpu_attention_in_chunks_gives_identical_results(unet, case_a, monkeypatch):
    import engine.models.geo4d.attention as attention

    monkeypatch.setattr(attention, "MATH_ATTENTION_ELEMENTS", 2 * 96 * 93)  # two frames' cross-attention
    out = unet(case_a["x_in"], case_a["t"], case_a["context"], case_a["fs"])
    torch.testing.assert_close(out, case_a["out"], atol=ATOL_UNET, rtol=ATOL_UNET)


def test_latent_size_must_divide_by_the_downsampling(unet, case_a):
    assert unet.size_multiple == 4  # 3 levels
    with pytest.raises(InputError, match="multiples of 4"):
        unet(case_a["x_in"][..., :6, :10], case_a["t"], case_a["context"], case_a["fs"])


def test_bfloat16_group_norm_equals_the_float32_round_trip():
    """GroupNorm32 of a bfloat16 module on the CPU skips the official float32 round trip: torch's bfloat16
    kernel computes in float32 and rounds only its output, so the two differ by the order of the sums,
    at most one bfloat16 step (2^-7 relative) where a sum lands near a rounding boundary."""
    from engine.models.geo4d.blocks import GroupNorm32

    g = torch.Generator().manual_seed(0)
    norm = GroupNorm32(320).to(torch.bfloat16)
    norm.weight.data = (1 + 0.5 * torch.randn(320, generator=g)).to(torch.bfloat16)
    norm.bias.data = torch.randn(320, generator=g).to(torch.bfloat16)
    x = (3 + 2 * torch.randn(16, 320, 8, 16, generator=g)).to(torch.bfloat16)
    out = norm(x)
    round_trip = torch.nn.functional.group_norm(x.float(), 32, norm.weight.float(), norm.bias.float(),
                                                norm.eps).to(torch.bfloat16)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), round_trip.float(), rtol=2 ** -7, atol=2 ** -7)
    assert (out != round_trip).float().mean() < 0.01  # a rare rounding, not another computation


@torch.no_grad()
def test_onednn_layers_reproduce_the_official_forward(tiny_config, case_a):
    """The CPU choices linear_kernel="onednn" and conv_kernel="onednn" (the UNet's linear layers and 2-D / 3-D
    convolutions on oneDNN's packed weights) keep the official outputs within the fixtures' tolerance, and
    the state dict (keys and values) of the layers they replaced; use_plain_layers gives torch's layers with
    the same weights back; other dtypes keep torch's layers."""
    if not onednn.onednn_available():
        pytest.skip("this torch has no oneDNN prepacked ops")
    unet = unet_forward.load_tiny_unet(FIXTURES, tiny_config)
    state = unet.state_dict()
    plain_types = {name: type(m) for name, m in unet.named_modules()}
    x, t, context, fs = case_a["x_in"], case_a["t"], case_a["context"], case_a["fs"]
    for kernel_of, packed_type in ((onednn.use_linear_kernel, onednn.OneDnnLinear),
                                   (onednn.use_conv_kernel, onednn.OneDnnConv)):
        assert kernel_of(unet, "onednn") == "onednn"
        packed = [m for m in unet.modules() if isinstance(m, packed_type)]
        assert packed and all(m.weight.is_mkldnn for m in packed)  # the packed copy only
        torch.testing.assert_close(unet(x, t, context, fs), case_a["out"], atol=ATOL_UNET, rtol=ATOL_UNET)
        packed_state = unet.state_dict()
        assert list(packed_state) == list(state)
        assert all(torch.equal(packed_state[k], v) for k, v in state.items())
    # Every 3x3 and temporal convolution is packed; the 1x1 ones stay torch's.
    assert not any(type(m) is torch.nn.Linear for m in unet.modules())
    assert all(m.kernel_size in ((1, 1), (1,)) for m in unet.modules() if type(m) in (torch.nn.Conv2d, torch.nn.Conv1d))
    assert not any(type(m) is torch.nn.Conv3d for m in unet.modules())
    onednn.use_plain_layers(unet)
    assert {name: type(m) for name, m in unet.named_modules()} == plain_types
    assert all(p.device.type == "cpu" and not p.is_mkldnn for p in unet.parameters())
    assert all(torch.equal(unet.state_dict()[k], v) for k, v in state.items())
    half = unet_forward.load_tiny_unet(FIXTURES, tiny_config).to(torch.bfloat16)
    assert onednn.use_linear_kernel(half, "onednn") == "mkl" and onednn.use_conv_kernel(half, "onednn") == "torch"
    assert not any(isinstance(m, (onednn.OneDnnLinear, onednn.OneDnnConv)) for m in half.modules())
