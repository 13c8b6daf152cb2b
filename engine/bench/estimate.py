"""What a reconstruction would need, from the benchmarks: the predicted peak GPU memory of one window (the
meta-device prediction of `python -m engine.bench memory`, run at the clip's processing size) and a time
derived from the benchmark figures measured so far (`FIGURES`, each with the command and machine that printed
it in docs/models.md). `python -m engine inspect` reports both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..windows.schedule import window_lengths

# Pixels of the benchmarks' processing size (64x128) that the figures below were measured at.
_BENCH_PIXELS = 64 * 128


@dataclass(frozen=True)
class Figure:
    """Seconds one benchmark run measured, split by what they grow with.

    per_clip_frame_s: once per clip frame (Geo4D's encoding: every frame is encoded once);
    per_window_frame_s: once per frame of every window (decoding; for GeometryCrafter the whole window at
        `steps`, the benchmark giving no split);
    per_window_frame_step_s: per frame of every window and diffusion step (Geo4D's diffusion);
    pixels_scale: whether the time is scaled by the processing size's pixels (False where a fixed-size part
        dominates: GeometryCrafter's MoGe prior runs at its own working size)."""

    command: str
    where: str
    setting: str
    per_clip_frame_s: float
    per_window_frame_s: float
    per_window_frame_step_s: float
    pixels_scale: bool
    caveat: str

    def seconds(self, clip_frames: int, window_frames: int, steps: int, size: tuple[int, int]) -> float:
        """Seconds for `clip_frames` frames in windows holding `window_frames` frames in all, `steps` diffusion
        steps, at processing size (H, W) on the benchmark's machine."""
        scale = size[0] * size[1] / _BENCH_PIXELS if self.pixels_scale else 1.0
        return scale * (clip_frames * self.per_clip_frame_s + window_frames * self.per_window_frame_s
                        + window_frames * steps * self.per_window_frame_step_s)


# Only CPU figures exist so far (docs/models.md, "CPU figures" and "GeometryCrafter"): no GPU has run the benchmarks.
FIGURES = {
    "geo4d": Figure(
        command="python -m engine.bench model --size 64 128 --frames 16 --steps 1 --runtime torch onnx "
                "--precision fp32 --no-warmup",
        where="2 shared CPU cores, no GPU (docs/models.md, CPU figures, torch fp32 row)",
        setting="64x128, 16 frames in 1 window, 1 step: encoding 0.346, diffusion 1.21, decoding 4.03 s per frame",
        per_clip_frame_s=0.3460, per_window_frame_s=4.0309, per_window_frame_step_s=1.2115, pixels_scale=True,
        caveat="scaled linearly with pixels, windows and steps (attention grows faster than pixels); the CPU "
               "seconds are noisy (an earlier run gave half)"),
    "geometrycrafter": Figure(
        command="python -m engine.bench model --model geometrycrafter --size 64 128 --frames 2 --steps 2 "
                "--precision bf16",
        where="2 shared CPU cores, no GPU (docs/models.md, GeometryCrafter, diff bf16 row)",
        setting="64x128, 2 frames in 1 window, 2 steps: 50.3 s per frame in all",
        per_clip_frame_s=0.0, per_window_frame_s=50.30, per_window_frame_step_s=0.0, pixels_scale=False,
        caveat="not scaled by size or steps (no per-stage figure; MoGe, at its fixed working size, dominated): "
               "a lower bound"),
}


@dataclass
class Needs:
    """What a reconstruction of a clip needs, per the benchmarks.

    peak_bytes: the predicted peak GPU memory of one window (torch.cuda.max_memory_allocated), weights included;
    weights_bytes: the weights' part of it; stages: {stage: peak bytes}; seconds: the time on the figure's machine;
    figure: the benchmark figure the time comes from."""

    precision: str
    peak_bytes: int
    weights_bytes: int
    stages: dict[str, int]
    seconds: float
    figure: Figure


def predict_needs(model: str, size: tuple[int, int], precision: str, starts: np.ndarray, clip_frames: int,
                  window_length: int, steps: int, variant: str | None = None, window_batch: int = 1) -> Needs:
    """The predicted peak memory of one window (Geo4D: `window_batch` windows denoised together) at processing size
    (H, W) in `precision` ("fp16", "bf16", "fp32"), and the time of the windows starting at `starts` (int64[G]) over
    `clip_frames` frames with `steps` steps. A few seconds on the CPU: the networks are built on the meta device."""
    import torch

    from ..pipeline.reconstruct import PRECISIONS

    dtype = getattr(torch, PRECISIONS[precision])
    lengths = window_lengths(starts, clip_frames, window_length)
    if model == "geo4d":
        from ..models.geo4d.config import OFFICIAL_CONFIG, load_config
        from .memory import meta_modules, stage_peaks

        peaks = stage_peaks(meta_modules(load_config(OFFICIAL_CONFIG), dtype), size, window_batch,
                            cuda_attention=True)
    else:
        from ..models.geometrycrafter.config import load_config
        from .memory_geometrycrafter import OFFICIAL_CONFIG, meta_networks
        from .memory_geometrycrafter import stage_peaks as crafter_peaks

        network = meta_networks(load_config(OFFICIAL_CONFIG), variant or "diff", dtype)
        peaks = crafter_peaks(network, np.zeros((int(lengths.max()), *size, 3), np.uint8))  # only its shape counts
    figure = FIGURES[model]
    return Needs(precision, peaks.overall, peaks.weights, dict(peaks.peaks),
                 figure.seconds(clip_frames, int(lengths.sum()), steps, size), figure)
