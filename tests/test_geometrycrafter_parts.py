"""GeometryCrafter's networks around the UNet (SVD VAE, point-map VAE, CLIP encoder, MoGe prior)
against the official outputs (fixtures b-e), the full-size key manifests, and the behaviours the
pipeline relies on: per-frame encoders, temporal decoding, the pinhole the prior encodes, portrait
frames, and MoGe's checkpoint read without unpickling code."""

from __future__ import annotations

import weakref

import pytest

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402

from engine.errors import ModelError  # noqa: E402
from engine.models.geometrycrafter.checks import full_manifest  # noqa: E402
from engine.models.geometrycrafter.checks import image_encoder as clip_check  # noqa: E402
from engine.models.geometrycrafter.checks import moge_prior as moge_check  # noqa: E402
from engine.models.geometrycrafter.checks import point_map_vae as pmap_check  # noqa: E402
from engine.models.geometrycrafter.checks import vae as vae_check  # noqa: E402
from engine.models.geometrycrafter.config import load_config  # noqa: E402
from engine.models.geometrycrafter.moge import moge_from_checkpoint  # noqa: E402
from engine.models.geometrycrafter.point_map_vae import decode_point_map, normalized_meshgrid  # noqa: E402
from engine.models.geometrycrafter.priors import intrinsic_map, priors_from_points  # noqa: E402
from engine.models.geometrycrafter.svd_vae import encode_vae_video  # noqa: E402
from tests.fixture_paths import GEOMETRYCRAFTER_FIXTURES as FOLDER  # noqa: E402
from tests.fixture_paths import assert_fixture_reproduced, requires_geometrycrafter_fixtures  # noqa: E402

pytestmark = requires_geometrycrafter_fixtures


@pytest.fixture(scope="module")
def config() -> dict:
    torch.set_num_threads(2)
    return load_config(FOLDER / "tiny_config.json")


@pytest.mark.parametrize("check, num_results", [(vae_check, 7), (pmap_check, 19), (clip_check, 9),
                                                (moge_check, 48), (full_manifest, 14)],
                         ids=["vae", "point_map_vae", "image_encoder", "moge_prior", "full_manifest"])
def test_fixture_reproduced(check, num_results, config):
    with torch.no_grad():
        assert_fixture_reproduced(check, config, num_results, FOLDER)


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_vae_encodes_each_frame_alone_and_decodes_frames_together(config):
    vae = vae_check.load_tiny_vae(FOLDER, config)
    video = _randn(3, 3, 32, 64).clamp(-1, 1)
    one_by_one = encode_vae_video(vae, video, chunk_size=1)
    assert one_by_one.shape == (3, 4, 4, 8)
    torch.testing.assert_close(encode_vae_video(vae, video, chunk_size=3), one_by_one, atol=1e-5, rtol=1e-5)
    # The temporal decoder mixes the frames of a clip: frame 0 decoded alone differs.
    together = vae.decode(one_by_one, num_frames=3)
    alone = vae.decode(one_by_one[:1], num_frames=1)
    assert together.shape == (3, 3, 32, 64)
    assert (together[:1] - alone).abs().max() > 1e-3


@torch.no_grad()
def test_vae_lets_go_of_block_inputs_and_first_convolutions(config):
    """What sets the VAE's peak memory: no frame holds a block's input once the block's first resnet has used it,
    and a resnet releases its first convolution's output before the second runs. Before, both were held: the
    predicted decoding peak at 576x1024 was 18.70 GB, the conditioning's (the encoder) 15.92; now 14.20 and 11.42."""
    vae = vae_check.load_tiny_vae(FOLDER, config)
    made, alive = {}, []

    def keep(name):
        return lambda module, args, out: made.__setitem__(name, weakref.ref(out))

    def check(name):
        return lambda module, args: alive.append((name, made[name]() is not None))

    up = vae.decoder.up_blocks
    up[-2].upsamplers[0].register_forward_hook(keep("last up block's input"))
    up[-1].resnets[1].register_forward_pre_hook(check("last up block's input"))
    spatial = up[-1].resnets[1].spatial_res_block
    spatial.conv1.register_forward_hook(keep("conv1 output"))
    spatial.conv2.register_forward_pre_hook(check("conv1 output"))
    vae.encoder.conv_in.register_forward_hook(keep("first down block's input"))
    vae.encoder.down_blocks[0].downsamplers[0].register_forward_pre_hook(check("first down block's input"))
    latent = encode_vae_video(vae, _randn(3, 3, 32, 64).clamp(-1, 1), chunk_size=3)
    vae.decode(latent, num_frames=3)
    assert alive == [("first down block's input", False), ("last up block's input", False), ("conv1 output", False)]


@torch.no_grad()
def test_decoded_point_map_is_one_pinhole_per_clip_or_per_frame(config):
    pm = pmap_check.load_tiny_point_map_vae(FOLDER, config)
    latents = _randn(4, 4, 4, 8, seed=1)
    grid = normalized_meshgrid(32, 64)
    for fixed in (True, False):
        points, valid = decode_point_map(pm, latents, chunk_size=2, force_fixed_focal=fixed)
        assert points.shape == (4, 32, 64, 3) and valid.dtype == torch.bool
        assert 0 < valid.float().mean() < 1
        focal = points[..., :2] / points[..., 2:] / grid.permute(1, 2, 0)  # [T, H, W, 2], constant per frame
        per_frame = focal.flatten(1, 2).mean(dim=1)
        torch.testing.assert_close(focal, per_frame[:, None, None].expand_as(focal), atol=1e-5, rtol=1e-4)
        spread = (per_frame - per_frame[0]).abs().max()
        assert spread < 1e-6 if fixed else spread > 1e-4
    # Without projection the decoder's own per-pixel focal map is used: not a single pinhole.
    free, _ = decode_point_map(pm, latents, chunk_size=2, force_projection=False)
    focal = free[..., :2] / free[..., 2:] / grid.permute(1, 2, 0)
    assert focal[0].std(dim=(0, 1)).min() > 1e-3


@pytest.mark.parametrize("height, width", [(96, 64), (64, 128)], ids=["portrait", "landscape"])
def test_prior_of_a_pinhole_camera_encodes_its_focal(height, width):
    fx = 0.8  # in image widths; square pixels, so fy = fx * W / H in image heights
    fy = fx * width / height
    u = (torch.arange(width) + 0.5) / width
    v = (torch.arange(height) + 0.5) / height
    z = 2.0 + _randn(2, height, width, seed=2).abs()
    points = torch.stack([(u[None, None, :] - 0.5) / fx * z, (v[None, :, None] - 0.5) / fy * z, z], dim=-1)
    valid = torch.ones(2, height, width, dtype=torch.bool)
    valid[:, :5] = False
    priors = priors_from_points(points, valid)
    expected = torch.tensor([0.0, 0.0, (width - 1) / (2 * width * fx), (height - 1) / (2 * height * fy)])
    torch.testing.assert_close(priors.intrinsics, expected.expand(2, 4), atol=2e-5, rtol=1e-5)
    assert priors.valid[:, :5].eq(-1).all() and priors.valid[:, 5:].eq(1).all()
    assert priors.disparity.min() >= -1 and priors.disparity.max() <= 1
    torch.testing.assert_close(priors.point_map[:, 2, 5:], torch.log(z[:, 5:] / priors.norm_factor),
                               atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="even frame size"):
        intrinsic_map(points[:, :95, :, :2] if height == 96 else points[:, :, :127, :2])


@torch.no_grad()
def test_moge_checkpoint_loads_without_code_and_handles_portrait_frames(config, tmp_path):
    moge = moge_check.load_tiny_moge(FOLDER, config)
    path = tmp_path / "model.pt"
    torch.save({"model_config": dict(config["moge"]), "model": moge.state_dict()}, path)
    loaded = moge_from_checkpoint(torch.load(path, weights_only=True))
    image = torch.rand(1, 3, 128, 64, generator=torch.Generator().manual_seed(3))
    out = loaded.infer(image)
    eh, ew = out.working_hw
    assert eh > ew and abs(eh * ew - moge.trained_area_range[1]) < eh + ew
    assert out.points.shape == (1, 128, 64, 3) and out.mask.shape == (1, 128, 64)
    torch.testing.assert_close(out.points, moge.infer(image).points, atol=0, rtol=0)
    # Re-projected through the recovered pinhole: x/z at the pixel centres is (u - 0.5) / fx.
    u = (torch.arange(ew) + 0.5) / ew
    x_over_z = out.points_projected[0, ..., 0] / out.points_projected[0, ..., 2]
    torch.testing.assert_close(x_over_z, ((u - 0.5) / out.intrinsics[0, 0, 0]).expand(eh, ew), atol=1e-5, rtol=1e-5)

    state = dict(moge.state_dict())
    state.pop("head.projects.0.weight")
    with pytest.raises(ModelError, match="does not match MoGe"):
        moge_from_checkpoint({"model_config": dict(config["moge"]), "model": state})
    with pytest.raises(ModelError, match="not a MoGe checkpoint"):
        moge_from_checkpoint({"model": state})
