"""How a long job reports to its caller (the CLI, the protocol server, the benchmarks), and how what the artist
reads counts: frames from 1, as Blender plays a clip; solve errors in the plate's pixels, as Blender's.

Standard library only, so the protocol server can import it before torch or the alignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

Progress = Callable[[str, float], None]  # (stage, fraction of that stage done, in [0, 1])
Log = Callable[[str, str], None]  # (level "info" or "warning", a sentence for the artist)


@dataclass(frozen=True)
class Plan:
    """What a reconstruct job runs, known once its clip is read: for displays that count windows."""

    frames: int                # frames of the clip in the range
    windows: int               # windows the model predicts
    window_length: int         # frames per window
    size: tuple[int, int]      # processing size (H, W)


Planned = Callable[[Plan], None]

# The number artists give a clip's first frame: Blender plays clip frame i (0-based, as in the bundle and the
# `--frames` range) at scene frame i + 1 at the clip's default Start Frame, and the exports key it there. What the
# engine tells the artist names frames this way (`frame_numbers`); scene.json keeps the 0-based index.
FIRST_FRAME = 1


def frame_numbers(indices: Iterable[int]) -> list[int]:
    """Clip frame indices (0-based) as the artist counts them (from FIRST_FRAME)."""
    return [int(i) + FIRST_FRAME for i in indices]


def plate_pixels(px, map_width: int, plate_width: int):
    """A length in pixels of the depth maps (`map_width` wide) in pixels of the plate (`plate_width` wide), the
    unit of Blender's own solve error and the one the artist reads; `px` a float or a numpy array."""
    return px * (plate_width / map_width)


def frame_spans(frames: list[int]) -> str:
    """Sorted frame numbers as a sentence's list: [3, 4, 5, 9] -> '3-5, 9'."""
    spans, start = [], frames[0]
    for a, b in zip(frames, [*frames[1:], None]):
        if b != a + 1:
            spans.append(f"{start}-{a}" if a != start else f"{a}")
            start = b
    return ", ".join(spans)
