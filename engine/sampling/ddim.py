"""Deterministic DDIM (eta = 0) for v-prediction models, as Geo4D's demo samples.

Independent of the network and its runtime: the caller passes `denoise(x, t) -> v`, with the
conditioning bound in. No classifier-free guidance (Geo4D uses scale 1, one call per step).
All arithmetic is float32 like the official sampler, so results match it to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .schedule import NoiseSchedule

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def uniform_trailing_timesteps(num_train_steps: int, num_steps: int) -> np.ndarray:
    """Ascending int64 [num_steps], ending on the last training step (999 for 1000): the
    "trailing" spacing, so the first step starts from pure noise under zero-terminal-SNR."""
    stride = num_train_steps / num_steps
    return np.round(np.arange(num_train_steps, 0, -stride))[::-1].astype(np.int64) - 1


@dataclass(frozen=True)
class DDIMPlan:
    """Per DDIM step i (ascending timesteps; sampling walks them backwards). Tensors are float32 [S]."""

    timesteps: torch.Tensor          # int64 [S]
    alphas: torch.Tensor             # alphas_cumprod[t_i]
    alphas_prev: torch.Tensor        # alphas_cumprod[t_{i-1}], alphas_cumprod[0] for i = 0
    sqrt_alphas: torch.Tensor        # sqrt(alphas_cumprod[t_i]), from float64 like the official buffers
    sqrt_one_minus_alphas: torch.Tensor
    rescale: torch.Tensor            # scale_arr[t_{i-1}] / scale_arr[t_i] (1 without dynamic rescale)

    @classmethod
    def make(cls, schedule: NoiseSchedule, num_steps: int) -> "DDIMPlan":
        if not 1 <= num_steps <= schedule.num_steps:
            raise ValueError(f"DDIM steps must be in 1..{schedule.num_steps}, got {num_steps}")
        ts = uniform_trailing_timesteps(schedule.num_steps, num_steps)
        ac = schedule.alphas_cumprod
        f32 = lambda a: torch.tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
        alphas = f32(ac)[ts]
        if schedule.scale_arr is None:
            scale = torch.ones(num_steps)
        else:
            scale = f32(schedule.scale_arr)[ts]
        return cls(
            timesteps=torch.tensor(ts),
            alphas=alphas,
            alphas_prev=torch.cat([f32(ac[:1]), alphas[:-1]]),
            sqrt_alphas=f32(np.sqrt(ac))[ts],
            sqrt_one_minus_alphas=f32(np.sqrt(1.0 - ac))[ts],
            rescale=torch.cat([scale[:1], scale[:-1]]) / scale,
        )


@dataclass
class DDIMStep:
    """What one step saw and made, for progress reports and fixture checks."""

    index: int                 # DDIM index, S-1 .. 0
    t: int                     # training timestep
    x_in: torch.Tensor
    model_output: torch.Tensor  # v
    pred_x0: torch.Tensor       # after dynamic rescale
    x_prev: torch.Tensor


@torch.no_grad()
def ddim_sample(denoise: Denoise, x_T: torch.Tensor, plan: DDIMPlan,
                on_step: Callable[[DDIMStep], None] | None = None) -> torch.Tensor:
    """x_T [B, C, ...] (float32 noise) -> x_0. `denoise(x, t)` gets x in float32 and t int64 [B]
    and returns v of x's shape (any float dtype; it is used in float32)."""
    x = x_T.float()
    for index in reversed(range(len(plan.timesteps))):
        t = int(plan.timesteps[index])
        v = denoise(x, torch.full((x.shape[0],), t, dtype=torch.int64, device=x.device)).float()
        sa = plan.sqrt_alphas[index].item()
        s1a = plan.sqrt_one_minus_alphas[index].item()
        eps = _f(sa, x) * v + _f(s1a, x) * x
        pred_x0 = (_f(sa, x) * x - _f(s1a, x) * v) * _f(plan.rescale[index].item(), x)
        a_prev = _f(plan.alphas_prev[index].item(), x)
        x_prev = a_prev.sqrt() * pred_x0 + (1.0 - a_prev).sqrt() * eps
        if on_step is not None:
            on_step(DDIMStep(index, t, x, v, pred_x0, x_prev))
        x = x_prev
    return x


def _f(value: float, like: torch.Tensor) -> torch.Tensor:
    """A float32 scalar tensor on `like`'s device, so products round exactly like the official code."""
    return torch.tensor(value, dtype=torch.float32, device=like.device)
