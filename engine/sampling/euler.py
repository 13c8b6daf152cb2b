"""Euler sampling with Karras sigmas for v-prediction models in continuous time, as Stable Video
Diffusion configures diffusers' `EulerDiscreteScheduler` (GeometryCrafter's `diff` variant).

Independent of the network: the caller evaluates the model between `scale_input` and `euler_step`.
The scalars are float32 0-d tensors and the operations run in the scheduler's order, so results
match diffusers to rounding. No stochastic churn (s_churn = 0, as SVD samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ModelError
from .schedule import linear_betas

RHO = 7.0  # Karras et al. (2022)

# Scheduler config values that this sampler implements (anything else is refused, not ignored).
_REQUIRED = {"prediction_type": "v_prediction", "timestep_type": "continuous", "use_karras_sigmas": True,
             "interpolation_type": "linear", "final_sigmas_type": "zero", "beta_schedule": "scaled_linear",
             "use_exponential_sigmas": False, "use_beta_sigmas": False, "rescale_betas_zero_snr": False,
             "trained_betas": None}


def training_sigmas(config: dict) -> np.ndarray:
    """[num_train_timesteps] sqrt((1 - alphas_cumprod) / alphas_cumprod) in training-step order
    (the scaled-linear betas), float64."""
    betas = linear_betas(config["beta_start"], config["beta_end"], int(config["num_train_timesteps"]))
    alphas_cumprod = np.cumprod(1.0 - betas)
    return np.sqrt((1.0 - alphas_cumprod) / alphas_cumprod)


def _spaced_timesteps(config: dict, num_steps: int) -> np.ndarray:
    """The discrete training timesteps of diffusers' `timestep_spacing`, descending."""
    train_steps = int(config["num_train_timesteps"])
    spacing = config.get("timestep_spacing", "linspace")
    if spacing == "linspace":
        return np.linspace(0, train_steps - 1, num_steps, dtype=np.float32)[::-1].copy()
    if spacing == "leading":
        ratio = train_steps // num_steps
        return (np.arange(0, num_steps) * ratio).round()[::-1].astype(np.float32) + config.get("steps_offset", 0)
    if spacing == "trailing":
        return np.arange(train_steps, 0, -train_steps / num_steps).round().astype(np.float32) - 1
    raise ModelError(f"scheduler config: timestep_spacing '{spacing}' is unknown",
                     "use linspace, leading or trailing (SVD: leading)")


@dataclass(frozen=True)
class EulerPlan:
    """The sampling schedule of `num_steps` steps."""

    sigmas: torch.Tensor            # float32 [S + 1], descending Karras sigmas, then 0
    timesteps: torch.Tensor         # float32 [S], 0.25 * ln(sigma): what the network is given
    init_noise_sigma: torch.Tensor  # float32 0-d: unit noise is multiplied by this

    @classmethod
    def from_config(cls, config: dict, num_steps: int) -> "EulerPlan":
        """From the scheduler's `scheduler_config.json` kwargs."""
        for name, value in _REQUIRED.items():
            if config.get(name, value) != value:
                raise ModelError(f"scheduler config sets {name} = {config[name]!r}; this sampler implements {value!r}",
                                 "use Stable Video Diffusion's scheduler config")
        if num_steps < 1:
            raise ModelError(f"the sampler needs at least 1 step, got {num_steps}", "ask for 1 or more steps")
        sigma_min, sigma_max = config.get("sigma_min"), config.get("sigma_max")
        if sigma_min is None or sigma_max is None:
            # diffusers then takes the ends of the training sigmas at the spaced timesteps.
            train = training_sigmas(config).astype(np.float32)
            spaced = np.interp(_spaced_timesteps(config, num_steps), np.arange(len(train)), train)
            sigma_min = spaced[-1] if sigma_min is None else sigma_min
            sigma_max = spaced[0] if sigma_max is None else sigma_max
        ramp = np.linspace(0, 1, num_steps)
        max_inv, min_inv = sigma_max ** (1 / RHO), sigma_min ** (1 / RHO)
        karras = (max_inv + ramp * (min_inv - max_inv)) ** RHO
        sigmas = torch.from_numpy(np.concatenate([karras, [0.0]]).astype(np.float32))
        top = sigmas.max()
        if config.get("timestep_spacing", "linspace") in ("linspace", "trailing"):
            init_noise_sigma = top
        else:
            init_noise_sigma = (top ** 2 + 1) ** 0.5
        return cls(sigmas, 0.25 * sigmas[:-1].log(), init_noise_sigma)

    def __len__(self) -> int:
        return len(self.timesteps)


def scale_input(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The network input at noise level sigma: x / sqrt(sigma^2 + 1)."""
    return x / ((sigma ** 2 + 1) ** 0.5)


def euler_step(x: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """One Euler step from sigma to sigma_next given the v-prediction (float32, x's device):
    x0 = -sigma/sqrt(sigma^2+1) v + x/(sigma^2+1), then x + (x - x0)/sigma * (sigma_next - sigma)."""
    x = x.float()
    sigma, sigma_next = sigma.to(x.device), sigma_next.to(x.device)
    x0 = v.float() * (-sigma / (sigma ** 2 + 1) ** 0.5) + (x / (sigma ** 2 + 1))
    return x + (x - x0) / sigma * (sigma_next - sigma)
