"""The constant cross-attention context: open_clip towers from checkpoint tensors against the
official outputs (fixture g), the antialiasing blur against OpenCV, and refusals."""

import cv2
import numpy as np
import pytest

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from engine.errors import ModelError  # noqa: E402
from engine.models.geo4d import conditioning as cond  # noqa: E402
from engine.models.geo4d.checks import conditioning as cond_check  # noqa: E402
from tests.fixture_paths import GEO4D_FIXTURES, assert_fixture_reproduced, requires_geo4d_fixtures  # noqa: E402


@requires_geo4d_fixtures
def test_fixture_g_reproduced(tiny_config):
    assert_fixture_reproduced(cond_check, tiny_config, 10)


@requires_geo4d_fixtures
def test_context_depends_on_the_checkpoint_text_and_image_weights(tiny_config):
    weights = load_file(GEO4D_FIXTURES / "tiny_weights.safetensors")
    expected = load_file(GEO4D_FIXTURES / "conditioning.safetensors")["c_crossattn"]
    context = cond.constant_context(weights, tiny_config)
    assert context.shape == (1, 77 + 16 * 16, 16)
    torch.testing.assert_close(context, expected, atol=1e-5, rtol=1e-5)
    changed = dict(weights)
    # A patch-embedding change (a constant shift would vanish in ln_pre).
    changed["embedder.model.visual.conv1.weight"] = weights["embedder.model.visual.conv1.weight"] * 1.5
    other = cond.constant_context(changed, tiny_config)
    assert torch.equal(other[:, :77], context[:, :77])
    assert (other[:, 77:] - context[:, 77:]).abs().max() > 1e-3


@requires_geo4d_fixtures
def test_missing_clip_tensor_is_a_clear_model_error(tiny_config):
    weights = load_file(GEO4D_FIXTURES / "tiny_weights.safetensors")
    del weights["cond_stage_model.model.ln_final.weight"]
    with pytest.raises(ModelError, match="cond_stage_model.model.ln_final.weight"):
        cond.constant_context(weights, tiny_config)


def test_unknown_clip_architecture_is_refused():
    with pytest.raises(ModelError, match="no-such-clip"):
        cond.build_clip("no-such-clip", {}, cond.TEXT_PREFIX, cond.TEXT_PARTS)


@pytest.mark.parametrize("h,w", [(320, 512), (576, 1024), (192, 640)])
def test_antialias_blur_matches_opencv(h, w):
    """Shrinking to 224 pre-blurs with sigma (factor - 1) / 2 and reflect borders, as kornia does."""
    image = np.random.default_rng(0).uniform(-1, 1, size=(h, w)).astype(np.float32)
    sigmas = [max((n / 224 - 1) / 2, 0.001) for n in (h, w)]
    sizes = [int(max(4 * s, 3)) | 1 for s in sigmas]
    ours = cond._gaussian_blur(torch.from_numpy(image)[None, None], sigmas)[0, 0].numpy()
    theirs = cv2.GaussianBlur(image, (sizes[1], sizes[0]), sigmaX=sigmas[1], sigmaY=sigmas[0],
                              borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert np.abs(ours - image).max() > 0.1  # a real blur, not the identity


def test_blank_frame_preprocesses_to_the_normalised_grey():
    pixels = cond.preprocess_frame(torch.zeros(1, 3, 320, 512))
    assert pixels.shape == (1, 3, 224, 224)
    expected = (0.5 - torch.tensor(cond.CLIP_MEAN)) / torch.tensor(cond.CLIP_STD)
    torch.testing.assert_close(pixels[0, :, 100, 37], expected)
    torch.testing.assert_close(pixels.amax(dim=(2, 3))[0], expected)
