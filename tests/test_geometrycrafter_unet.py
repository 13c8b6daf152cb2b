"""GeometryCrafter's spatio-temporal UNet against the official forward (fixture a, with its
intermediates), and what the config decides: levels, widths, heads, layers, input channels."""

from __future__ import annotations

import pytest

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402

from engine.errors import InputError, ModelError  # noqa: E402
from engine.models.geometrycrafter.checks import unet_forward  # noqa: E402
from engine.models.geometrycrafter.config import load_config  # noqa: E402
from engine.models.geometrycrafter.unet import SpatioTemporalUNet  # noqa: E402
from tests.fixture_paths import GEOMETRYCRAFTER_FIXTURES as FOLDER  # noqa: E402
from tests.fixture_paths import assert_fixture_reproduced, requires_geometrycrafter_fixtures  # noqa: E402

# A configuration unlike both the tiny and the real one: 4 levels, growing widths, 2 layers and
# 2 transformer layers per level, other head counts and a different cross-attention width.
OTHER = {"in_channels": 8, "out_channels": 4, "block_out_channels": [32, 64, 64, 96],
         "down_block_types": ["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
         "up_block_types": ["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
         "layers_per_block": 2, "transformer_layers_per_block": 2, "num_attention_heads": [1, 2, 4, 3],
         "cross_attention_dim": 24, "addition_time_embed_dim": 4, "projection_class_embeddings_input_dim": 12,
         "sample_size": 96, "num_frames": 25}


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@requires_geometrycrafter_fixtures
def test_unet_forward_fixture_reproduced():
    torch.set_num_threads(2)
    with torch.no_grad():
        results = assert_fixture_reproduced(unet_forward, load_config(FOLDER / "tiny_config.json"), 39, FOLDER)
    assert {r.name.split(".")[0] for r in results} == {"caseA", "caseB", "determ"}


def test_the_architecture_comes_from_the_config():
    unet = SpatioTemporalUNet.from_config(OTHER)
    assert len(unet.down_blocks) == len(unet.up_blocks) == 4 and unet.size_multiple == 8
    assert [len(b.resnets) for b in unet.down_blocks] == [2, 2, 2, 2]
    assert [len(b.resnets) for b in unet.up_blocks] == [3, 3, 3, 3]
    assert [hasattr(b, "attentions") for b in unet.down_blocks] == [True, True, True, False]
    assert [hasattr(b, "attentions") for b in unet.up_blocks] == [False, True, True, True]
    assert [b.downsamplers is not None for b in unet.down_blocks] == [True, True, True, False]
    assert [b.upsamplers is not None for b in unet.up_blocks] == [True, True, True, False]
    keys = unet.state_dict()
    assert keys["conv_in.weight"].shape == (32, 8, 3, 3)
    assert keys["add_embedding.linear_1.weight"].shape == (128, 12)
    # Level 2 has 64 channels in 4 heads; its cross-attention reads 24-d embeddings.
    assert keys["down_blocks.2.attentions.1.transformer_blocks.1.attn2.to_k.weight"].shape == (64, 24)
    assert unet.down_blocks[2].attentions[0].transformer_blocks[0].attn1.heads == 4
    # The first up block concatenates the 96-channel bottom with each skip.
    assert keys["up_blocks.0.resnets.0.spatial_res_block.conv1.weight"].shape == (96, 192, 3, 3)
    assert keys["up_blocks.3.resnets.2.spatial_res_block.conv1.weight"].shape == (32, 64, 3, 3)


@torch.no_grad()
def test_portrait_latents_and_clips_batched_or_alone():
    torch.manual_seed(0)
    unet = SpatioTemporalUNet.from_config(OTHER).eval()
    sample, context, ids = _randn(2, 3, 8, 16, 8, seed=1), _randn(2, 3, 24, seed=2), torch.tensor([[7., 127., .02]] * 2)
    out = unet(sample, 1.2, context, ids)
    assert out.shape == (2, 3, 4, 16, 8) and torch.isfinite(out).all()
    for b in range(2):
        alone = unet(sample[b:b + 1], 1.2, context[b:b + 1], ids[b:b + 1])
        torch.testing.assert_close(alone, out[b:b + 1], atol=1e-5, rtol=1e-5)
    # The frames are mixed in time: changing one frame's input changes the others' outputs.
    changed = sample.clone()
    changed[:, 2] += 1.0
    assert (unet(changed, 1.2, context, ids)[:, 0] - out[:, 0]).abs().max() > 1e-4


def test_bad_configs_and_latent_sizes_are_refused():
    with pytest.raises(ModelError, match="num_attention_heads"):
        SpatioTemporalUNet.from_config({**OTHER, "num_attention_heads": [1, 2, 4]})
    with pytest.raises(ModelError, match="does not know: mid_block_type"):
        SpatioTemporalUNet.from_config({**OTHER, "mid_block_type": "x"})
    with pytest.raises(ModelError, match="3 heads"):
        SpatioTemporalUNet.from_config({**OTHER, "num_attention_heads": [1, 2, 3, 3]})
    unet = SpatioTemporalUNet.from_config(OTHER)
    with pytest.raises(InputError, match="multiples of 8"):
        unet(torch.zeros(1, 2, 8, 12, 16), 1.0, torch.zeros(1, 2, 24), torch.zeros(1, 3))


@torch.no_grad()
def test_a_half_precision_unet_takes_float32_inputs():
    # The real UNet runs in half precision; the pipeline keeps latents and embeddings in float32.
    torch.manual_seed(0)
    unet = SpatioTemporalUNet.from_config(OTHER).eval()
    sample, context, ids = _randn(1, 2, 8, 8, 8, seed=3), _randn(1, 2, 24, seed=4), torch.tensor([[7., 127., .02]])
    full = unet(sample, 0.5, context, ids)
    half = unet.to(torch.bfloat16)(sample, 0.5, context, ids)
    assert half.dtype == torch.bfloat16
    assert (half.float() - full).abs().max() < 0.1 * full.abs().max()


@requires_geometrycrafter_fixtures
def test_the_feed_forward_in_token_chunks_gives_the_same_output():
    """The feed-forwards run FEED_FORWARD_TOKENS tokens at a time (memory); each token's output is its own."""
    from engine.models.geo4d.attention import FeedForward
    from engine.models.geometrycrafter.unet import FEED_FORWARD_TOKENS

    unet = unet_forward.load_tiny_unet(FOLDER, load_config(FOLDER / "tiny_config.json"), "diff")
    feed_forwards = [m for m in unet.modules() if isinstance(m, FeedForward)]
    assert feed_forwards and all(m.max_tokens == FEED_FORWARD_TOKENS for m in feed_forwards)
    sample, context = _randn(1, 5, 12, 8, 16), _randn(1, 5, 32, seed=1)
    ids = torch.tensor([[7.0, 127.0, 0.02]])
    with torch.no_grad():
        whole = unet(sample, 1.6378, context, ids)  # the largest feed-forward: 5 x 128 tokens, no chunks
        for module in feed_forwards:
            module.max_tokens = 48  # 14 chunks, the last one partial
        chunked = unet(sample, 1.6378, context, ids)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-6)
    assert whole.abs().max() > 0.1
