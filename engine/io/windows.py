"""The window-predictions file: what a geometry model says about each sliding window.

Public format (documented in docs/formats.md): one `.npz` holding the arrays below.
Every window has its own frame (its first camera) and its own unknown scale and shift;
the alignment fuses them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .atomic import staged_file

FORMAT_NAME = "parallax.window_predictions"
FORMAT_VERSION = 1


@dataclass
class WindowPredictions:
    """Per-window geometry of a clip of N frames, G windows of up to L frames, H x W pixels.

    Windows shorter than L (clips with fewer than L frames) are stored padded to L;
    `window_lengths[g]` says how many of the L slots are real.

    Attributes:
        num_frames: N, frames in the clip.
        fps: frames per second of the clip.
        image_size: (H, W) of every map, pixels.
        window_length: L, nominal frames per window (16 for Geo4D).
        window_starts: int64[G], first frame of each window.
        window_lengths: int64[G], real frames of each window (<= L).
        pointmap: float32[G, L, H, W, 3], xyz of each pixel in the window's first-camera
            frame (OpenCV axes), up to an unknown per-window scale and translation.
        pointmap_conf: float32[G, L, H, W], >= 0; 0 marks an invalid pixel.
        disparity: float32[G, L, H, W], affine-invariant per window; <= 0 is invalid.
        ray_dirs: float32[G, L, H, W, 3], unit ray directions in the window frame.
        ray_moments: float32[G, L, H, W, 3], Plücker moments o x d, same scale as pointmap.
        rgb: optional uint8[N, H, W, 3], the frames at the maps' resolution.
        source: optional path of the clip the predictions came from.
    """

    num_frames: int
    fps: float
    image_size: tuple[int, int]
    window_length: int
    window_starts: np.ndarray
    window_lengths: np.ndarray
    pointmap: np.ndarray
    pointmap_conf: np.ndarray
    disparity: np.ndarray
    ray_dirs: np.ndarray
    ray_moments: np.ndarray
    rgb: np.ndarray | None = None
    source: str = ""

    @property
    def num_windows(self) -> int:
        return int(len(self.window_starts))

    def frames_of(self, g: int) -> np.ndarray:
        """int64[len_g]: clip frame index of each real slot of window g."""
        return self.window_starts[g] + np.arange(self.window_lengths[g])

    def validate(self) -> None:
        """Raise InputError naming the first problem found; return None when the data is usable."""
        validate(self)


_MAPS = ("pointmap", "pointmap_conf", "disparity", "ray_dirs", "ray_moments")


def _fail(problem: str, fix: str = "regenerate the predictions file with `python -m engine reconstruct` "
          "or fix the writer; the format is in docs/formats.md") -> None:
    raise InputError(problem, fix)


def validate(w: WindowPredictions) -> None:
    n, (h, wd), l = int(w.num_frames), tuple(int(v) for v in w.image_size), int(w.window_length)
    if n < 1:
        _fail(f"num_frames is {n}; a clip needs at least one frame")
    if not np.isfinite(w.fps) or w.fps <= 0:
        _fail(f"fps is {w.fps}; it must be a positive number")
    if h < 2 or wd < 2 or l < 1:
        _fail(f"image_size {w.image_size} / window_length {l} are not usable")
    g = w.num_windows
    if g < 1:
        _fail("the file holds no windows")
    starts = np.asarray(w.window_starts)
    lengths = np.asarray(w.window_lengths)
    if starts.shape != (g,) or lengths.shape != (g,):
        _fail(f"window_starts {starts.shape} and window_lengths {lengths.shape} must both be ({g},)")
    if np.any(lengths < 1) or np.any(lengths > l):
        _fail(f"window_lengths must lie in 1..{l}, got {lengths.tolist()}")
    if np.any(starts < 0) or np.any(starts + lengths > n):
        _fail(f"a window runs outside the clip's {n} frames: starts {starts.tolist()}, lengths {lengths.tolist()}")
    expected = {
        "pointmap": (g, l, h, wd, 3), "pointmap_conf": (g, l, h, wd), "disparity": (g, l, h, wd),
        "ray_dirs": (g, l, h, wd, 3), "ray_moments": (g, l, h, wd, 3),
    }
    for name, shape in expected.items():
        arr = getattr(w, name)
        if not isinstance(arr, np.ndarray) or arr.shape != shape:
            got = getattr(arr, "shape", type(arr).__name__)
            _fail(f"`{name}` has shape {got}, expected {shape} (G, L, H, W[, 3])")
        # Window by window, so that no copy of the whole map is made.
        bad = sum(int(np.count_nonzero(~np.isfinite(arr[i, : lengths[i]]))) for i in range(g))
        if bad:
            _fail(f"`{name}` holds {bad} NaN or inf values; invalid pixels must be marked with "
                  "pointmap_conf = 0 / disparity <= 0, not with NaN")
    if np.any(w.pointmap_conf < 0):
        _fail("`pointmap_conf` has negative values; it must be >= 0 (0 = invalid)")
    covered = np.zeros(n, bool)
    for i in range(g):
        frames = w.frames_of(i)
        valid = (w.pointmap_conf[i, : lengths[i]] > 0).reshape(len(frames), -1).any(axis=1)
        covered[frames[valid]] = True
    if not covered.any():
        _fail("every pixel of every window has pointmap_conf = 0: nothing to reconstruct",
              "check the model's output; an all-invalid prediction usually means a wrong input range")
    if not covered.all():
        missing = np.flatnonzero(~covered)
        _fail(f"frames {_ranges(missing)} are not covered by any window with a valid pixel",
              "predict windows over the whole clip (the last window must end on the last frame)")
    if w.rgb is not None and (w.rgb.shape != (n, h, wd, 3) or w.rgb.dtype != np.uint8):
        _fail(f"`rgb` has shape {w.rgb.shape} / dtype {w.rgb.dtype}, expected uint8 {(n, h, wd, 3)}")


def _ranges(idx: np.ndarray) -> str:
    parts, start = [], None
    for k, v in enumerate(idx):
        if start is None:
            start = v
        if k + 1 == len(idx) or idx[k + 1] != v + 1:
            parts.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ", ".join(parts[:8]) + (" ..." if len(parts) > 8 else "")


def save_windows(w: WindowPredictions, path: str | os.PathLike) -> None:
    """Write `w` to `path` (.npz, uncompressed) atomically: a temporary file, then a rename."""
    path = Path(path)
    arrays = {
        "format": np.array(FORMAT_NAME), "format_version": np.array(FORMAT_VERSION),
        "num_frames": np.array(w.num_frames, np.int64), "fps": np.array(w.fps, np.float64),
        "image_size": np.array(w.image_size, np.int64), "window_length": np.array(w.window_length, np.int64),
        "window_starts": np.asarray(w.window_starts, np.int64),
        "window_lengths": np.asarray(w.window_lengths, np.int64),
        "source": np.array(w.source),
    }
    for name in _MAPS:
        arrays[name] = np.asarray(getattr(w, name), np.float32)
    if w.rgb is not None:
        arrays["rgb"] = np.asarray(w.rgb, np.uint8)
    with staged_file(path) as f:
        np.savez(f, **arrays)


def load_windows(path: str | os.PathLike) -> WindowPredictions:
    """Read a window-predictions file; raise InputError naming what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"predictions file {path} does not exist", "pass the path of a .npz window-predictions file")
    try:
        data = np.load(path, allow_pickle=False)
        keys = set(data.files)
    except Exception as exc:  # zip or npy header damage
        raise InputError(f"{path} is not a readable .npz file ({exc})",
                         "regenerate it; the format is in docs/formats.md") from exc
    required = {"num_frames", "fps", "image_size", "window_length", "window_starts", *_MAPS}
    missing = sorted(required - keys)
    if missing:
        _fail(f"{path.name} lacks the keys {missing}")
    starts = data["window_starts"].astype(np.int64)
    l = int(data["window_length"])
    n = int(data["num_frames"])
    if "window_lengths" in keys:
        lengths = data["window_lengths"].astype(np.int64)
    else:  # writers other than ours may omit it: a window runs to L or to the clip's end
        lengths = np.minimum(l, n - starts)
    w = WindowPredictions(
        num_frames=n, fps=float(data["fps"]), image_size=tuple(int(v) for v in data["image_size"]),
        window_length=l, window_starts=starts, window_lengths=lengths,
        **{name: data[name] for name in _MAPS},
        rgb=data["rgb"] if "rgb" in keys else None,
        source=str(data["source"]) if "source" in keys else "",
    )
    validate(w)
    return w


__all__ = ["WindowPredictions", "save_windows", "load_windows", "validate", "FORMAT_NAME", "FORMAT_VERSION"]
