"""How a long job reports to its caller (the CLI, the protocol server, the benchmarks).

Standard library only, so the protocol server can import it before torch or the alignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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


def frame_spans(frames: list[int]) -> str:
    """Sorted frame numbers as a sentence's list: [3, 4, 5, 9] -> '3-5, 9'."""
    spans, start = [], frames[0]
    for a, b in zip(frames, [*frames[1:], None]):
        if b != a + 1:
            spans.append(f"{start}-{a}" if a != start else f"{a}")
            start = b
    return ", ".join(spans)
