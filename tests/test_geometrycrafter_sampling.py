"""GeometryCrafter's sampling: the Euler tables and loop against diffusers (fixture f), the window
rules and blending against the official pipelines (windows.json), an analytic known answer for the
sampler, and several windows without overlap (where the official `diff` pipeline crashes)."""

from __future__ import annotations

import pytest

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402

from engine.errors import InputError, ModelError  # noqa: E402
from engine.models.geometrycrafter.checks import scheduler_sampling, windows as windows_check  # noqa: E402
from engine.models.geometrycrafter.checks.unet_forward import load_tiny_unet  # noqa: E402
from engine.models.geometrycrafter.config import load_config  # noqa: E402
from engine.models.geometrycrafter.denoise import Conditioning, added_time_ids, sample_diff  # noqa: E402
from engine.models.geometrycrafter.pipeline import initial_noise  # noqa: E402
from engine.models.geometrycrafter.windows import WindowPlan, append_window, window_noise  # noqa: E402
from engine.sampling.euler import EulerPlan, euler_step, scale_input  # noqa: E402
from tests.fixture_paths import GEOMETRYCRAFTER_FIXTURES as FOLDER  # noqa: E402
from tests.fixture_paths import assert_fixture_reproduced, requires_geometrycrafter_fixtures  # noqa: E402

SVD_SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                 "num_train_timesteps": 1000, "prediction_type": "v_prediction", "sigma_max": 700.0,
                 "sigma_min": 0.002, "steps_offset": 1, "timestep_spacing": "leading", "timestep_type": "continuous",
                 "use_karras_sigmas": True}


@pytest.fixture(scope="module")
def config() -> dict:
    torch.set_num_threads(2)
    return load_config(FOLDER / "tiny_config.json")


@requires_geometrycrafter_fixtures
@torch.no_grad()
def test_scheduler_fixture_reproduced(config):
    assert_fixture_reproduced(scheduler_sampling, config, 53, FOLDER)


@requires_geometrycrafter_fixtures
def test_official_windows_reproduced(config):
    results = assert_fixture_reproduced(windows_check, config, 28, FOLDER)
    assert any("official crashes" in r.name for r in results)


def test_euler_lands_on_the_clean_sample_of_an_exact_denoiser():
    # For one clean sample x0, the exact v-prediction at noise level sigma is
    # (x/(sigma^2+1) - x0) * sqrt(sigma^2+1)/sigma; Euler then walks straight to x0.
    plan = EulerPlan.from_config(SVD_SCHEDULER, 5)
    assert plan.sigmas[0] == 700.0 and plan.sigmas[-1] == 0 and len(plan) == 5
    x0 = torch.linspace(-1, 1, 10)
    x = torch.randn(10, generator=torch.Generator().manual_seed(0)) * plan.init_noise_sigma
    for i in range(len(plan)):
        sigma = plan.sigmas[i]
        v = (x / (sigma ** 2 + 1) - x0) * (sigma ** 2 + 1) ** 0.5 / sigma
        assert torch.allclose(scale_input(x, sigma), x / (sigma ** 2 + 1) ** 0.5)
        x = euler_step(x, v, sigma, plan.sigmas[i + 1])
    torch.testing.assert_close(x, x0, atol=1e-5, rtol=0)


def test_scheduler_configs_it_does_not_implement_are_refused():
    with pytest.raises(ModelError, match="prediction_type"):
        EulerPlan.from_config({**SVD_SCHEDULER, "prediction_type": "epsilon"}, 5)
    with pytest.raises(ModelError, match="use_karras_sigmas"):
        EulerPlan.from_config({**SVD_SCHEDULER, "use_karras_sigmas": False}, 5)


def test_window_plans():
    plan = WindowPlan.make(10, 5, 2)
    assert plan.spans == ((0, 5), (3, 8), (6, 10)) and plan.stride == 3
    assert WindowPlan.make(4, 110, 25) == WindowPlan(4, 0, ((0, 4),))
    assert WindowPlan.make(8, 4, 0).spans == ((0, 4), (4, 8))
    # Noise frame j of window k is (j + k*stride) mod window_size.
    assert window_noise(torch.arange(5)[None], plan, 1)[0].tolist() == [3, 4, 0, 1, 2]
    assert window_noise(torch.arange(5)[None], plan, 2)[0].tolist() == [1, 2, 3, 4]
    for window, overlap in [(4, 4), (4, 5), (0, 0), (3, -1)]:
        with pytest.raises(InputError, match="stride"):
            WindowPlan.make(10, window, overlap)


def test_blending_ramps_from_the_earlier_window_to_the_later():
    first, second = torch.zeros(1, 4, 1), torch.ones(1, 4, 1)
    blended = append_window(append_window(None, first, 3), second, 3)
    assert blended[0, :, 0].tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]


@requires_geometrycrafter_fixtures
@torch.no_grad()
def test_diff_windows_without_overlap_are_sampled_independently(config):
    # The official diff pipeline raises here; ours samples each window on its own and concatenates.
    torch.manual_seed(0)
    unet = load_tiny_unet(FOLDER, config, "diff")
    t = 6
    cond = Conditioning(torch.randn(t, 4, 4, 8), torch.randn(t, 4, 4, 8), torch.randn(t, 32), added_time_ids())
    euler = EulerPlan.from_config(config["scheduler"], 2)
    noise = torch.randn(1, 3, 4, 4, 8, generator=torch.Generator().manual_seed(1))
    together = sample_diff(unet, cond, WindowPlan.make(t, 3, 0), euler, noise)
    assert together.shape == (t, 4, 4, 8)
    for start in (0, 3):
        part = Conditioning(cond.video_latents[start:start + 3], cond.prior_latents[start:start + 3],
                            cond.embeddings[start:start + 3], cond.added_time_ids)
        alone = sample_diff(unet, part, WindowPlan.make(3, 3, 0), euler, noise)
        torch.testing.assert_close(together[start:start + 3], alone, atol=1e-5, rtol=1e-5)


def test_seeded_noise_is_what_the_official_run_draws_on_a_cpu():
    # run.py calls set_seed(seed), then the pipeline draws torch.randn([1, window, 4, h, w]).
    plan = WindowPlan.make(12, 5, 2)
    torch.manual_seed(42)
    expected = torch.randn(1, 5, 4, 8, 16)
    torch.manual_seed(0)  # the global generator's state does not matter
    assert torch.equal(initial_noise(plan, (4, 8, 16), 42), expected)
