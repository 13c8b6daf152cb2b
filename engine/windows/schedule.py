"""Sliding windows over a clip: which frames each model window sees.

Geo4D's demo steps a 16-frame window by `stride` and always appends a last window ending on the
clip's last frame. Its membership test never matches, so that last window is processed twice
whenever `(num_frames - 16) % stride == 0`; we run each distinct window once.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

WINDOW_LENGTH = 16


def window_starts(num_frames: int, stride: int, length: int = WINDOW_LENGTH) -> np.ndarray:
    """int64[G]: first frame of each model window of `length` frames over `num_frames` frames.

    The schedule of `sliding_starts`, refused where the model cannot use it: no frames, or a stride
    that leaves consecutive windows without shared frames.
    """
    if num_frames < 1:
        raise InputError(f"the clip has {num_frames} frames", "choose a clip or frame range with at least one frame")
    check_stride(stride, length)
    return sliding_starts(num_frames, stride, length)


def check_stride(stride: int, length: int = WINDOW_LENGTH) -> None:
    """Refuse (InputError) a stride that leaves consecutive windows of `length` frames without shared frames."""
    if not 1 <= stride < length:
        # Windows must overlap: the alignment links them through their shared frames.
        raise InputError(f"window stride {stride} is not usable: windows of {length} frames must overlap",
                         f"pass a stride from 1 to {length - 1} (default 4)")


def sliding_starts(num_frames: int, stride: int, length: int = WINDOW_LENGTH) -> np.ndarray:
    """int64[G]: windows start at 0, stride, 2*stride, ... while they fit; the last window ends on the
    last frame. A clip shorter than `length` gives one short window starting at 0. Any stride >= 1."""
    if num_frames <= length:
        return np.zeros(1, np.int64)
    starts = list(range(0, num_frames - length + 1, stride))
    if starts[-1] != num_frames - length:
        starts.append(num_frames - length)
    return np.asarray(starts, np.int64)


def window_lengths(starts: np.ndarray, num_frames: int, length: int = WINDOW_LENGTH) -> np.ndarray:
    """int64[G]: real frames of each window (< length only for clips shorter than `length`)."""
    return np.minimum(length, num_frames - np.asarray(starts, np.int64))
