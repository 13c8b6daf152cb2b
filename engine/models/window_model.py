"""The seam between the pipeline and a geometry model: a `WindowModel` turns a clip's frames into window
predictions over a window schedule the pipeline computed, at a processing size its `SizeRule` chooses.

Standard library and numpy only: the pipeline reads this before any model (or torch) is loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ..errors import InputError
from ..reporting import Progress
from ..windows.predictions import WindowPredictions


@dataclass(frozen=True)
class SizeRule:
    """The frame sizes a model runs at: sides multiples of `multiple`, near its training size in area.

    model: the model's name, for messages; trained_at: (H, W) it was trained at."""

    multiple: int
    trained_at: tuple[int, int]
    model: str

    def fit(self, clip_size: tuple[int, int]) -> tuple[int, int]:
        """The processing (H, W) for a clip of clip_size (H, W): its aspect at the training area."""
        return processing_size(clip_size, self.multiple, self.trained_at[0] * self.trained_at[1])

    def check(self, size: tuple[int, int]) -> None:
        """Refuse a processing size (H, W) whose sides are not positive multiples of `multiple` (InputError)."""
        if size[0] % self.multiple or size[1] % self.multiple or min(size) < self.multiple:
            raise InputError(f"processing size {size[0]}x{size[1]} is not a multiple of {self.multiple}",
                             f"pass --size H W with both multiples of {self.multiple} ({self.model} trains at "
                             f"{self.trained_at[0]} {self.trained_at[1]})")


def processing_size(clip_size: tuple[int, int], multiple: int, area: int) -> tuple[int, int]:
    """(H, W), multiples of `multiple`, balancing the clip's aspect and the model's training area
    (log errors of both, equally weighted)."""
    ch, cw = clip_size
    aspect = cw / ch
    best = None
    for h in range(multiple, 4 * int(math.sqrt(area)) + 1, multiple):
        w = max(multiple, int(h * aspect / multiple + 0.5) * multiple)
        cost = abs(math.log(w / h / aspect)) + abs(math.log(h * w / area))
        if best is None or cost < best[0] - 1e-12:
            best = (cost, h, w)
    return best[1], best[2]


@dataclass
class SamplingOptions:
    """How a diffusion model samples its windows. Results depend only on `steps` and `seed`, not on
    `window_batch` (windows denoised together: more is faster on a large GPU)."""

    steps: int = 5
    seed: int = 123
    window_batch: int = 1


class WindowModel(Protocol):
    """A loaded geometry model, as the pipeline uses it."""

    label: str          # its name for the artist, e.g. "Geo4D"
    window_length: int  # frames per window

    @property
    def size_rule(self) -> SizeRule:
        """The processing sizes it accepts and the one it prefers for a clip."""

    def predict(self, frames: np.ndarray, fps: float, starts: np.ndarray, options: SamplingOptions | None = None,
                progress: Progress | None = None, cancelled: Callable[[], bool] | None = None,
                map_size: tuple[int, int] | None = None, spill_dir: Path | None = None) -> WindowPredictions:
        """A clip's window predictions.

        Args:
            frames: uint8[N, H, W, 3] sRGB, H and W accepted by `size_rule`.
            fps: the clip's frame rate.
            starts: int64[G], the first frame of each window (engine.windows.schedule.window_starts).
            options: sampling settings (default SamplingOptions()).
            progress, cancelled: report progress (stage "diffusion": the share of the G windows done, which the
                command line shows as "window k/G"); raise engine.errors.Cancelled when cancelled() is true.
            map_size: (H', W') of the returned maps (default H x W).
            spill_dir: a folder for nameless temporary files holding the maps as they are made; None: in memory.

        Returns:
            WindowPredictions with G windows of `window_length` frames at map_size, each window's maps in its
            first camera's frame (OpenCV axes).
        """
