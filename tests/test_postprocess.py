"""Post-processing against the official outputs (fixtures f and e) and a camera solve on a
synthetic ray map of known cameras, portrait and with an odd crop, which the fixture does not cover."""

import numpy as np
import pytest

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from engine.models.geo4d import postprocess as post  # noqa: E402
from engine.models.geo4d.checks import postprocess as post_check  # noqa: E402
from engine.models.geo4d.checks.vae import load_tiny_vaes  # noqa: E402
from engine.models.geo4d.config import model_params  # noqa: E402
from tests.fixture_paths import GEO4D_FIXTURES, assert_fixture_reproduced, requires_geo4d_fixtures  # noqa: E402


@requires_geo4d_fixtures
def test_fixture_f_reproduced(tiny_config):
    assert_fixture_reproduced(post_check, tiny_config, 13)


@requires_geo4d_fixtures
def test_e2e_window_decoded_and_post_processed_like_the_demo(tiny_config):
    e2e = load_file(GEO4D_FIXTURES / "e2e_window.safetensors")
    first, pm = load_tiny_vaes(GEO4D_FIXTURES, tiny_config)
    decoded = post.decode_window(e2e["samples"], first, pm, model_params(tiny_config)["scale_factor"], chunk=6)
    batch = e2e["batch_images"][0].permute(1, 2, 3, 0)  # [T, H, W, 11]
    for ours, channels in [(decoded.xyz, slice(0, 3)), (decoded.raw_uncertainty, slice(3, 4)),
                           (decoded.ray_dirs, slice(4, 7)), (decoded.ray_moments, slice(7, 10)),
                           (decoded.disparity, slice(10, 11))]:
        torch.testing.assert_close(ours, batch[..., channels], atol=1e-4, rtol=1e-4)

    geo = post.window_geometry(decoded)
    for name, ours in [("pts3d", geo.pts3d), ("conf", geo.conf), ("confidence_final", geo.confidence),
                       ("inverse_depthmap", geo.inverse_depth), ("raydir", geo.ray_dirs),
                       ("crossmap", geo.ray_moments)]:
        torch.testing.assert_close(ours, e2e["post." + name], atol=1e-4, rtol=1e-4, msg=name)
    for name, ours in [("sky_mask", geo.sky), ("far_away_mask", geo.far_away), ("valid_mask", geo.valid)]:
        assert torch.equal(ours.to(torch.uint8), e2e["post." + name]), name
    assert 0.05 < float((~geo.valid).float().mean()) < 0.3  # the fixture's weights make ~12 % invalid

    cams = post_check.cameras_from_plucker(geo.ray_dirs, geo.ray_moments)
    torch.testing.assert_close(cams.c2w, e2e["post.traj_c2w"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cams.rays, e2e["post.cam.rays_plucker"], atol=1e-4, rtol=1e-4)


def _ray_maps(rotations, centers, fx, fy, cx, cy, h, w, seed=0):
    """Plücker maps [T, H, W, 3] of pinhole cameras (c2w rotations, centres), with directions of
    random positive length."""
    v, u = np.mgrid[0:h, 0:w] + 0.5
    pix = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1)
    rng = np.random.default_rng(seed)
    dirs, moments = [], []
    for R, c in zip(rotations, centers):
        d = pix @ R.T
        unit = d / np.linalg.norm(d, axis=-1, keepdims=True)
        dirs.append(d * rng.uniform(0.5, 3.0, size=(h, w, 1)))
        moments.append(np.cross(c, unit))
    return (torch.tensor(np.array(dirs), dtype=torch.float32), torch.tensor(np.array(moments), dtype=torch.float32))


@pytest.mark.parametrize("h,w", [(41, 24), (24, 41), (20, 20)])
def test_cameras_from_plucker_recovers_known_cameras(h, w):
    rotations = Rotation.from_euler("xyz", [[5, -10, 3], [0, 0, 0], [-8, 20, 12], [30, 2, -4]],
                                    degrees=True).as_matrix()
    centers = np.array([[0.1, -0.2, 0.05], [0.0, 0.0, 0.0], [0.4, 0.1, -0.3], [-0.2, 0.3, 0.6]])
    dirs, moments = _ray_maps(rotations, centers, 30.0, 32.0, w / 2 + 1.5, h / 2 - 2.0, h, w)
    cams = post_check.cameras_from_plucker(dirs, moments)
    s = min(h, w)
    assert cams.rays.shape == (4, s * s, 6)
    expected_R = rotations @ rotations[0].T
    np.testing.assert_allclose(cams.R.numpy(), expected_R, atol=2e-5)
    np.testing.assert_allclose(cams.centers.numpy(), centers, atol=2e-5)
    np.testing.assert_allclose(np.linalg.det(cams.R.numpy()), 1.0, atol=1e-5)
    c2w = cams.c2w.numpy()
    np.testing.assert_allclose(c2w[:, :3, 3], centers, atol=2e-5)
    np.testing.assert_allclose(c2w[:, 3], np.tile([0, 0, 0, 1], (4, 1)))
    np.testing.assert_allclose(cams.T.numpy(), -np.einsum("tji,tj->ti", expected_R, centers), atol=2e-5)


def test_masks_and_denormalisation_on_hand_values():
    xyz = torch.tensor([[1.05, 1.05, 1.05], [1.05, 1.05, 1.40], [0.0, 0.0, -1.0], [0.5, -1.995, 0.2]])
    assert post.sky_mask(xyz)[:, 0].tolist() == [True, False, False, False]
    assert post.far_away_mask(xyz)[:, 0].tolist() == [False, False, False, True]
    np.testing.assert_allclose(post.denormalize_pointmap(xyz)[2].numpy(), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(post.denormalize_pointmap(xyz)[3].numpy(), [0.25, -0.9975, 0.6], rtol=1e-6)
