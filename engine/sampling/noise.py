"""Reproducible diffusion noise: each tensor seeded from (seed, stream, index) alone, so a window's or a
frame's noise does not depend on how the work is batched or ordered."""

from __future__ import annotations

import numpy as np
import torch


def seeded_randn(shape: tuple, seed: int, stream: int, index: int) -> torch.Tensor:
    """Standard normal float32 noise on the CPU, reproducible from (seed, stream, index) alone."""
    key = np.random.SeedSequence([seed, stream, index]).generate_state(1, np.uint64)[0]
    generator = torch.Generator().manual_seed(int(key) & 0x7FFF_FFFF_FFFF_FFFF)
    return torch.randn(shape, generator=generator)
