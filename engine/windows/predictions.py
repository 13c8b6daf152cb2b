"""Window predictions: what a geometry model says about each sliding window of a clip.

Public format (docs/formats.md): a folder holding `windows.json` (the facts) and one `.npy` file per
map. The maps are memory-mapped, both while a model writes them (`new_maps`) and when they are read,
so a clip of any length needs memory for about one window, not for all of them (~0.13 GB per window
at 320x576). Version 1, one `.npz` with the same arrays, is still read.
Every window has its own frame (its first camera) and its own unknown scale and shift;
the alignment fuses them.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

FORMAT_NAME = "parallax.window_predictions"
FORMAT_VERSION = 2
META_FILE = "windows.json"  # written last: a folder without it is incomplete


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


# Each map's trailing axes after (G, L, H, W).
_MAPS = {"pointmap": (3,), "pointmap_conf": (), "disparity": (), "ray_dirs": (3,), "ray_moments": (3,)}


def maps_bytes(num_windows: int, window_length: int, image_size: tuple[int, int]) -> int:
    """Bytes of the float32 maps of `num_windows` windows (11 floats per pixel and frame)."""
    floats = sum(int(np.prod(channels)) for channels in _MAPS.values())
    return 4 * floats * num_windows * window_length * image_size[0] * image_size[1]


def new_maps(num_windows: int, window_length: int, image_size: tuple[int, int],
             spill_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Zero-filled float32 maps for WindowPredictions, by name: in memory, or (spill_dir given) mapped
    from nameless temporary files in that folder, so that the system pages them to disk instead of
    holding them in memory. The files have no name from the start: the system deletes them when
    the maps are freed or the process ends, even when it is killed."""
    shapes = {name: (num_windows, window_length, *image_size, *channels) for name, channels in _MAPS.items()}
    if spill_dir is None:
        return {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    maps = {}
    for name, shape in shapes.items():
        with tempfile.TemporaryFile(dir=spill_dir, prefix=f".parallax-{name}-") as f:
            maps[name] = np.memmap(f, np.float32, "w+", shape=shape)  # the map keeps the file open
    return maps


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
    for name, channels in _MAPS.items():
        arr = getattr(w, name)
        shape = (g, l, h, wd, *channels)
        if not isinstance(arr, np.ndarray) or arr.shape != shape:
            got = getattr(arr, "shape", type(arr).__name__)
            _fail(f"`{name}` has shape {got}, expected {shape} (G, L, H, W[, 3])")
        # Window by window, so that no copy of the whole map is made.
        bad = sum(int(np.count_nonzero(~np.isfinite(arr[i, : lengths[i]]))) for i in range(g))
        if bad:
            _fail(f"`{name}` holds {bad} NaN or inf values; invalid pixels must be marked with "
                  "pointmap_conf = 0 / disparity <= 0, not with NaN")
    covered = np.zeros(n, bool)
    for i in range(g):
        conf = np.asarray(w.pointmap_conf[i])  # one read of the window's confidence (it may be on disk)
        if np.any(conf < 0):
            _fail("`pointmap_conf` has negative values; it must be >= 0 (0 = invalid)")
        frames = w.frames_of(i)
        valid = (conf[: lengths[i]] > 0).reshape(len(frames), -1).any(axis=1)
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


def save_windows(w: WindowPredictions, folder: str | os.PathLike) -> Path:
    """Write `w` as a window-predictions folder (docs/formats.md); return its path.

    `windows.json` is written last, so a folder without it is incomplete; callers that need
    all-or-nothing write into a staged folder (a bundle does)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in _MAPS:
        _save_array(getattr(w, name), folder / f"{name}.npy", np.float32)
    if w.rgb is not None:
        _save_array(w.rgb, folder / "rgb.npy", np.uint8)
    meta = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "num_frames": int(w.num_frames),
        "fps": float(w.fps), "image_size": [int(v) for v in w.image_size], "window_length": int(w.window_length),
        "window_starts": [int(v) for v in w.window_starts], "window_lengths": [int(v) for v in w.window_lengths],
        "rgb": "rgb.npy" if w.rgb is not None else None, "source": str(w.source),
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1))
    return folder


def _save_array(arr: np.ndarray, target: Path, dtype) -> None:
    if isinstance(arr, np.memmap) and arr.filename and target.exists() and os.path.samefile(arr.filename, target):
        return  # already there (a folder saved onto itself); rewriting would truncate the file under its map
    np.save(target, np.asarray(arr, dtype))


def load_windows(path: str | os.PathLike) -> WindowPredictions:
    """Read window predictions: a folder (memory-mapped, read-only) or a version-1 `.npz`;
    raise InputError naming what is wrong with them."""
    path = Path(path)
    if path.is_dir():
        w = _load_folder(path)
    elif path.is_file():
        w = _load_npz(path)
    else:
        raise InputError(f"window predictions {path} does not exist",
                         "pass a window-predictions folder (a bundle's `windows`) or a .npz file")
    validate(w)
    return w


def _check_version(meta: dict, where: Path) -> None:
    if meta.get("format", FORMAT_NAME) != FORMAT_NAME:
        _fail(f"{where} has format {meta['format']!r}, expected {FORMAT_NAME!r}")
    version = int(meta.get("format_version", 1))
    if version > FORMAT_VERSION:
        raise InputError(f"{where} is window-predictions version {version}, newer than this Parallax "
                         f"({FORMAT_VERSION})", "update Parallax")


def _facts(meta, where: Path) -> dict:
    """The WindowPredictions fields other than the maps, from a mapping of the format's facts."""
    missing = sorted({"num_frames", "fps", "image_size", "window_length", "window_starts"} - set(meta))
    if missing:
        _fail(f"{where} lacks {missing}")
    try:
        starts = np.asarray(meta["window_starts"], np.int64).reshape(-1)
        n, l = int(meta["num_frames"]), int(meta["window_length"])
        lengths = (np.asarray(meta["window_lengths"], np.int64).reshape(-1) if "window_lengths" in meta
                   else np.minimum(l, n - starts))  # writers other than ours may omit it
        return dict(num_frames=n, fps=float(meta["fps"]), image_size=tuple(int(v) for v in meta["image_size"]),
                    window_length=l, window_starts=starts, window_lengths=lengths,
                    source=str(meta["source"]) if "source" in meta else "")
    except (TypeError, ValueError) as exc:
        _fail(f"{where} has a malformed value ({exc})")


def _load_folder(folder: Path) -> WindowPredictions:
    meta_file = folder / META_FILE
    if not meta_file.is_file():
        _fail(f"{folder} has no {META_FILE}: it is not a window-predictions folder, or its writing was cut short")
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as exc:
        _fail(f"{meta_file} is not valid JSON ({exc})")
    _check_version(meta, meta_file)
    names = [*_MAPS, "rgb"] if meta.get("rgb") else list(_MAPS)
    arrays = {}
    for name in names:
        file = folder / f"{name}.npy"
        if not file.is_file():
            _fail(f"{folder} lacks {file.name}")
        try:
            arrays[name] = np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:  # truncated file or damaged header
            _fail(f"{file} is not a readable .npy file ({exc})")
    return WindowPredictions(**_facts(meta, meta_file), **arrays)


def _load_npz(path: Path) -> WindowPredictions:
    try:
        data = np.load(path, allow_pickle=False)
        keys = set(data.files)
    except Exception as exc:  # zip or npy header damage
        raise InputError(f"{path} is not a readable .npz file ({exc})",
                         "regenerate it; the format is in docs/formats.md") from exc
    missing = sorted(set(_MAPS) - keys)
    if missing:
        _fail(f"{path.name} lacks the keys {missing}")
    meta = {k: data[k].item() if data[k].ndim == 0 else data[k] for k in keys - set(_MAPS) - {"rgb"}}
    _check_version(meta, path)
    return WindowPredictions(**_facts(meta, path), **{name: data[name] for name in _MAPS},
                             rgb=data["rgb"] if "rgb" in keys else None)


__all__ = ["WindowPredictions", "maps_bytes", "new_maps", "save_windows", "load_windows", "validate", "FORMAT_NAME",
           "FORMAT_VERSION"]
