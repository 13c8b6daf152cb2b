"""The training noise schedule of Geo4D / DynamiCrafter, as plain arrays.

Linear-in-sqrt betas (0.00085 .. 0.012 over 1000 steps) rescaled to zero terminal SNR
(Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed"), and the
dynamic-rescale factors (`scale_arr`) that Geo4D applies to the predicted clean latent.
Computed in float64 like the official code; the official buffers are these cast to float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def linear_betas(start: float, end: float, num_steps: int) -> np.ndarray:
    """[num_steps] float64, linear in sqrt(beta) (the SD/LDM "linear" schedule)."""
    return np.linspace(start ** 0.5, end ** 0.5, num_steps, dtype=np.float64) ** 2


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Shift and scale sqrt(alphas_cumprod) so that it keeps its first value and ends at exactly 0."""
    sqrt_ac = np.sqrt(np.cumprod(1.0 - betas))
    first, last = sqrt_ac[0], sqrt_ac[-1]
    sqrt_ac = (sqrt_ac - last) * (first / (first - last))
    ac = sqrt_ac ** 2
    alphas = np.concatenate([ac[:1], ac[1:] / ac[:-1]])
    return 1.0 - alphas


def dynamic_rescale_scales(num_steps: int, base_scale: float, turning_step: int = 400) -> np.ndarray:
    """[turning_step + num_steps]: linspace(1, base_scale, turning_step), then base_scale. Indexed by t."""
    return np.concatenate([np.linspace(1.0, base_scale, turning_step), np.full(num_steps, base_scale)])


@dataclass(frozen=True)
class NoiseSchedule:
    """Per training timestep t in [0, num_steps): arrays in float64."""

    betas: np.ndarray           # [num_steps]
    alphas_cumprod: np.ndarray  # [num_steps]; 0 at the last step when zero-terminal-SNR
    scale_arr: np.ndarray | None  # [turning_step + num_steps] or None without dynamic rescale

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    @classmethod
    def from_model_params(cls, params: dict) -> "NoiseSchedule":
        """From the official model params (`linear_start`, `linear_end`, `timesteps`,
        `rescale_betas_zero_snr`, `use_dynamic_rescale`, `base_scale`)."""
        if params.get("parameterization", "eps") != "v":
            raise ValueError("only v-prediction models are supported (parameterization: v)")
        steps = int(params.get("timesteps", 1000))
        betas = linear_betas(params["linear_start"], params["linear_end"], steps)
        if params.get("rescale_betas_zero_snr", False):
            betas = rescale_zero_terminal_snr(betas)
        scale_arr = None
        if params.get("use_dynamic_rescale", False):
            scale_arr = dynamic_rescale_scales(steps, params.get("base_scale", 0.7))
        return cls(betas, np.cumprod(1.0 - betas), scale_arr)
