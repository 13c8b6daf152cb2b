"""From conditioning latents to point-map latents, window by window: the `diff` variant's Euler
sampling and the `determ` variant's single UNet call (the official pipelines' denoising loops).

Guidance scale 1 as the official `run.py` uses it: one UNet call per step, no classifier-free
guidance. Latents are float32 throughout; the UNet casts its input to its own dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ...sampling.euler import EulerPlan, euler_step, scale_input
from .unet import SpatioTemporalUNet
from .windows import WindowPlan, append_window, window_noise

# The determ UNet's fixed timestep (~ 0.25 ln 700, the first Euler timestep), a python float as the
# official pipeline passes it.
DETERM_TIMESTEP = 1.6378
# The SVD micro-conditioning both pipelines pass: fps 7 (not fps - 1), motion bucket 127; the noise
# augmentation strength is only a number here, no noise is added to the conditioning.
FPS_ID, MOTION_BUCKET_ID, NOISE_AUG_STRENGTH = 7, 127, 0.02

# on_unet_call(window index, step index, UNet input, timestep, UNet output)
UNetCallback = Callable[[int, int, torch.Tensor, object, torch.Tensor], None]


@dataclass
class Conditioning:
    """Per-frame conditioning of a clip of T frames at latent size h x w."""

    video_latents: torch.Tensor   # [T, 4, h, w] SVD VAE posterior means of the frames, unscaled
    prior_latents: torch.Tensor   # [T, 4, h, w] point-map VAE latents of the prior, scaled by 0.18215
    embeddings: torch.Tensor      # [T, D] CLIP image embedding of each frame
    added_time_ids: torch.Tensor  # [1, 3] (fps, motion bucket, noise augmentation strength)

    def window(self, span: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(video latents, prior latents, embeddings) of frames [start, end), with a batch axis."""
        s = slice(*span)
        return self.video_latents[None, s], self.prior_latents[None, s], self.embeddings[None, s]


def added_time_ids(device: torch.device | str = "cpu") -> torch.Tensor:
    """[1, 3] float32 (7, 127, 0.02)."""
    return torch.tensor([[FPS_ID, MOTION_BUCKET_ID, NOISE_AUG_STRENGTH]], dtype=torch.float32, device=device)


@torch.no_grad()
def sample_diff(unet: SpatioTemporalUNet, cond: Conditioning, plan: WindowPlan, euler: EulerPlan,
                noise: torch.Tensor, on_unet_call: UNetCallback | None = None) -> torch.Tensor:
    """`diff`: Euler-sample every window from sigma_max and blend them -> scaled latents [T, 4, h, w].

    noise [1, window_size, 4, h, w]: unit noise drawn once for the clip (see windows.window_noise).
    In every window after the first, the frames it shares with the previous ones start from their
    blended result plus the window's noise at sigma_max."""
    overlap = plan.overlap
    init = noise.float() * euler.init_noise_sigma.to(noise.device)
    result = None
    for k, span in enumerate(plan.spans):
        video_latents, prior_latents, embeddings = cond.window(span)
        x = window_noise(init, plan, k).clone()
        for i in range(len(euler)):
            sigma = euler.sigmas[i].to(x.device)
            if result is not None and i == 0 and overlap:
                x[:, :overlap] = result[:, -overlap:] + x[:, :overlap] / euler.init_noise_sigma * euler.sigmas[0]
            unet_input = torch.cat([scale_input(x, sigma), video_latents, prior_latents], dim=2)
            v = unet(unet_input, euler.timesteps[i], embeddings, cond.added_time_ids)
            if on_unet_call is not None:
                on_unet_call(k, i, unet_input, euler.timesteps[i], v)
            x = euler_step(x, v, sigma, euler.sigmas[i + 1])
        result = append_window(result, x, overlap)
    return result[0]


@torch.no_grad()
def predict_determ(unet: SpatioTemporalUNet, cond: Conditioning, plan: WindowPlan,
                   on_unet_call: UNetCallback | None = None) -> torch.Tensor:
    """`determ`: one UNet call per window on (prior latents, RGB latents); the window's latents are
    the negated output, blended like `diff`'s -> scaled latents [T, 4, h, w]."""
    result = None
    for k, span in enumerate(plan.spans):
        video_latents, prior_latents, embeddings = cond.window(span)
        unet_input = torch.cat([prior_latents, video_latents], dim=2)
        out = unet(unet_input, DETERM_TIMESTEP, embeddings, cond.added_time_ids)
        if on_unet_call is not None:
            on_unet_call(k, 0, unet_input, DETERM_TIMESTEP, out)
        result = append_window(result, -out.float(), plan.overlap)
    return result[0]
