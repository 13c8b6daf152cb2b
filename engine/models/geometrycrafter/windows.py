"""GeometryCrafter's temporal windows: which frames each UNet call sees, which noise frames the
`diff` variant gives it, and how consecutive windows are blended over their overlap.

The rules are the official pipelines' (`GeometryCrafter{Diff,Determ}Pipeline.__call__`): windows of
`window_size` frames start at 0, stride, 2*stride, ... while start < T - overlap (stride =
window_size - overlap), the last one may be shorter; a clip no longer than a window is one window
without overlap. Where the official `diff` pipeline crashes (overlap 0 with several windows: its
`latents_all[:, -0:]` selects everything), windows here are simply concatenated, as `determ` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import InputError


@dataclass(frozen=True)
class WindowPlan:
    window_size: int                    # frames per window (the clip length when it is shorter)
    overlap: int                        # frames shared by consecutive windows (0 for one window)
    spans: tuple[tuple[int, int], ...]  # [start, end) of each window

    @property
    def stride(self) -> int:
        return self.window_size - self.overlap

    @classmethod
    def make(cls, num_frames: int, window_size: int, overlap: int) -> "WindowPlan":
        if num_frames < 1:
            raise InputError("the clip has no frames", "give at least one frame")
        if window_size < 1 or not 0 <= overlap < window_size:
            raise InputError(f"window size {window_size} with overlap {overlap} leaves no stride between windows",
                             "use a window of at least 1 frame and an overlap from 0 to window size - 1")
        if num_frames <= window_size:
            window_size, overlap = num_frames, 0
        stride = window_size - overlap
        spans = tuple((start, min(start + window_size, num_frames))
                      for start in range(0, num_frames - overlap, stride))
        return cls(window_size, overlap, spans)


def blend_weights(overlap: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """float32 [overlap]: the later window's weight at each overlapping frame (0 first, 1 last)."""
    return torch.linspace(0, 1, overlap, device=device)


def append_window(result: torch.Tensor | None, window: torch.Tensor, overlap: int) -> torch.Tensor:
    """Frames so far [1, n, ...] (None before the first window) and the next window [1, L, ...] ->
    [1, n + L - overlap, ...]: the overlapping frames become new * w + old * (1 - w)."""
    if result is None:
        return window.clone()
    if overlap:
        w = blend_weights(overlap, window.device).view(1, overlap, *([1] * (window.dim() - 2)))
        result = result.clone()
        result[:, -overlap:] = window[:, :overlap] * w + result[:, -overlap:] * (1 - w)
    return torch.cat([result, window[:, overlap:]], dim=1)


def window_noise(noise: torch.Tensor, plan: WindowPlan, index: int) -> torch.Tensor:
    """The `diff` noise of window `index`: the one noise tensor [1, window_size, ...] drawn for the
    clip, rotated by `stride` frames per window (frame j of window k is noise frame
    (j + k*stride) mod window_size), cut to the window's length."""
    start, end = plan.spans[index]
    frames = (torch.arange(end - start) + index * plan.stride) % plan.window_size
    return noise[:, frames.to(noise.device)]
