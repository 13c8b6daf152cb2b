"""Noise schedule and DDIM: the official buffers and sampler records (fixture d), and an oracle
denoiser that DDIM must invert exactly."""

import numpy as np
import pytest

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from engine.models.geo4d.checks import ddim_sampling  # noqa: E402
from engine.models.geo4d.config import load_config, model_params  # noqa: E402
from engine.sampling.ddim import DDIMPlan, ddim_sample, uniform_trailing_timesteps  # noqa: E402
from engine.sampling.schedule import NoiseSchedule, linear_betas, rescale_zero_terminal_snr  # noqa: E402
from tests.fixture_paths import GEO4D_FIXTURES, assert_fixture_reproduced, requires_geo4d_fixtures  # noqa: E402

REAL = NoiseSchedule.from_model_params(model_params(load_config()))


@requires_geo4d_fixtures
def test_schedule_equals_the_checkpoint_buffers():
    weights = load_file(GEO4D_FIXTURES / "tiny_weights.safetensors")
    ac = REAL.alphas_cumprod
    for name, ours in [("betas", REAL.betas), ("alphas_cumprod", ac), ("scale_arr", REAL.scale_arr),
                       ("sqrt_alphas_cumprod", np.sqrt(ac)), ("sqrt_one_minus_alphas_cumprod", np.sqrt(1 - ac))]:
        np.testing.assert_array_equal(ours.astype(np.float32), weights[name].numpy(), err_msg=name)


def test_zero_terminal_snr_keeps_the_first_step_and_ends_at_zero():
    betas = linear_betas(0.00085, 0.012, 1000)
    rescaled = rescale_zero_terminal_snr(betas)
    ac = np.cumprod(1 - rescaled)
    assert ac[-1] == pytest.approx(0.0, abs=1e-12)
    assert ac[0] == pytest.approx(1 - betas[0], rel=1e-12)
    assert np.all(np.diff(ac) < 0)
    assert REAL.scale_arr.shape == (1400,)
    assert REAL.scale_arr[0] == 1.0 and REAL.scale_arr[399] == pytest.approx(0.7) and REAL.scale_arr[-1] == 0.7


def test_uniform_trailing_timesteps():
    np.testing.assert_array_equal(uniform_trailing_timesteps(1000, 5), [199, 399, 599, 799, 999])
    ts = uniform_trailing_timesteps(1000, 50)
    assert ts[-1] == 999 and ts[0] == 19 and np.all(np.diff(ts) == 20)
    with pytest.raises(ValueError, match="DDIM steps"):
        DDIMPlan.make(REAL, 0)


@requires_geo4d_fixtures
def test_fixture_d_reproduced(tiny_config):
    assert_fixture_reproduced(ddim_sampling, tiny_config, 26 + 6)


def _oracle(schedule: NoiseSchedule, x0: torch.Tensor):
    """The v an ideal model predicts for x_t when the clean sample is x0."""
    sa = torch.tensor(np.sqrt(schedule.alphas_cumprod), dtype=torch.float64)
    s1a = torch.tensor(np.sqrt(1 - schedule.alphas_cumprod), dtype=torch.float64)

    def denoise(x, t):
        a, b = sa[t[0]], s1a[t[0]]
        eps = (x.double() - a * x0) / b
        return (a * eps - b * x0).float()

    return denoise


@pytest.mark.parametrize("steps", [1, 5, 25])
def test_ddim_with_an_oracle_stays_on_the_noise_trajectory(steps):
    """Deterministic DDIM keeps x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps with eps = x_T (a_999 = 0);
    like the official sampler it stops at t = 0's alpha, not at 1."""
    no_rescale = NoiseSchedule(REAL.betas, REAL.alphas_cumprod, None)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, 4, 3, 4, 5, generator=gen, dtype=torch.float64)
    x_T = torch.randn(1, 4, 3, 4, 5, generator=gen)
    out = ddim_sample(_oracle(no_rescale, x0), x_T, DDIMPlan.make(no_rescale, steps))
    a0 = REAL.alphas_cumprod[0]
    expected = np.sqrt(a0) * x0 + np.sqrt(1 - a0) * x_T.double()
    torch.testing.assert_close(out.double(), expected, atol=1e-4, rtol=1e-4)
    assert (out.double() - x0).abs().max() > 1e-3  # the residual noise is real


def test_dynamic_rescale_shrinks_the_prediction():
    """Each step scales its clean-sample estimate by scale[t_prev] / scale[t]; the last step (no
    previous DDIM timestep) by 1."""
    x0 = torch.ones(1, 1, 1, 2, 2, dtype=torch.float64)
    steps = []
    ddim_sample(_oracle(REAL, x0), torch.zeros(1, 1, 1, 2, 2), DDIMPlan.make(REAL, 5), steps.append)
    assert [s.t for s in steps] == [999, 799, 599, 399, 199]
    assert float(steps[0].pred_x0.mean()) == pytest.approx(REAL.scale_arr[799] / REAL.scale_arr[999], rel=1e-5)
    assert float(steps[-2].pred_x0.mean()) == pytest.approx(REAL.scale_arr[199] / REAL.scale_arr[399], rel=1e-4)
    assert float(steps[-1].pred_x0.mean()) == pytest.approx(1.0, rel=1e-5)
