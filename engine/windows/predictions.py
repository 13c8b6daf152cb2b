"""Window predictions: what a geometry model says about each sliding window of a clip.

Public format (docs/formats.md): a folder holding `windows.json` (the facts) and one `.npy` file per
map. The maps are memory-mapped, both while a model writes them (`new_maps`) and when they are read,
so a clip of any length needs memory for about one window, not for all of them (~0.13 GB per window
at 320x576). Version 1, one `.npz` with the same arrays, is still read.
Every window has its own frame (its first camera) and its own unknown scale and shift;
the alignment fuses them.

Models differ in what they give (`modalities`): Geo4D gives point maps in the window's frame, disparity
and rays; GeometryCrafter gives only point maps, each in its own frame's camera (`pointmap_frame`
"camera"), with a validity mask as confidence. The alignment chooses its path from these two facts.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import tokenize
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EngineError, InputError
from ..paths import contained

# How the maps may be stored: fp16 halves a bundle's largest part for a re-alignment error measured in
# docs/formats.md; a map outside float16's range (|x| > 65504) is kept in float32.
PRECISIONS = {"fp16": np.float16, "fp32": np.float32}
FORMAT_NAME = "parallax.window_predictions"
FORMAT_VERSION = 3  # 3: `modalities` and `pointmap_frame`; 2: a folder of .npy files; 1: one .npz
# What a model may give, and the maps each needs; every model gives a point map.
MODALITIES = {"pointmap": ("pointmap", "pointmap_conf"), "disparity": ("disparity",),
              "rays": ("ray_dirs", "ray_moments")}
POINTMAP_FRAMES = ("window", "camera")  # the window's first camera / each frame's own camera
META_FILE = "windows.json"  # written last: a folder without it is incomplete
MAX_FPS = 1e6  # the fastest high-speed cameras; anything above is not a frame rate
MAX_VALUE = 1e12  # map values beyond this are not a scene (float32 keeps 7 digits)


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
        The maps are float32, or float16 as stored by save_windows(precision="fp16"); readers compute in
        float32 or wider.
        pointmap: float32[G, L, H, W, 3], xyz of each pixel (OpenCV axes) in the window's first-camera
            frame, up to an unknown per-window scale and translation (`pointmap_frame` "window"); or in
            the slot's own camera frame, up to an unknown per-window scale ("camera").
        pointmap_conf: float32[G, L, H, W], >= 0; 0 marks an invalid pixel (a validity mask is 0 / 1).
        disparity: float32[G, L, H, W], affine-invariant per window; <= 0 is invalid. None: not given.
        ray_dirs: float32[G, L, H, W, 3], unit ray directions in the window frame. None: not given.
        ray_moments: float32[G, L, H, W, 3], Plücker moments o x d, same scale as pointmap (with ray_dirs).
        rgb: optional uint8[N, H, W, 3], the frames at the maps' resolution; required for camera-frame
            point maps (the alignment follows the pixels from frame to frame by optical flow).
        source: optional path of the clip the predictions came from.
        pointmap_frame: "window" or "camera", see `pointmap`.
    """

    num_frames: int
    fps: float
    image_size: tuple[int, int]
    window_length: int
    window_starts: np.ndarray
    window_lengths: np.ndarray
    pointmap: np.ndarray
    pointmap_conf: np.ndarray
    disparity: np.ndarray | None = None
    ray_dirs: np.ndarray | None = None
    ray_moments: np.ndarray | None = None
    rgb: np.ndarray | None = None
    source: str = ""
    pointmap_frame: str = "window"

    @property
    def num_windows(self) -> int:
        return int(len(self.window_starts))

    @property
    def modalities(self) -> tuple[str, ...]:
        """What the model gave, in the order of MODALITIES: "pointmap" always, "disparity", "rays"."""
        return tuple(m for m, names in MODALITIES.items() if getattr(self, names[0]) is not None)

    def frames_of(self, g: int) -> np.ndarray:
        """int64[len_g]: clip frame index of each real slot of window g."""
        return self.window_starts[g] + np.arange(self.window_lengths[g])

    def first_slots(self) -> tuple[np.ndarray, np.ndarray]:
        """(window int64[N], slot in it int64[N]): for each frame, the first window that covers it (validate
        checks that every frame is covered)."""
        frames = np.arange(self.num_frames)[:, None]
        starts, lengths = np.asarray(self.window_starts), np.asarray(self.window_lengths)
        window = np.argmax((starts <= frames) & (starts + lengths > frames), axis=1)
        return window, frames[:, 0] - starts[window]

    def validate(self) -> None:
        """Raise InputError naming the first problem found; return None when the data is usable."""
        validate(self)


# Each map's trailing axes after (G, L, H, W).
_MAPS = {"pointmap": (3,), "pointmap_conf": (), "disparity": (), "ray_dirs": (3,), "ray_moments": (3,)}
# Every file a window-predictions folder may hold.
FOLDER_FILES = (META_FILE, *(f"{name}.npy" for name in _MAPS), "rgb.npy")


def _map_names(modalities) -> list[str]:
    if not all(isinstance(m, str) for m in modalities) or set(modalities) - set(MODALITIES) \
            or "pointmap" not in modalities:
        _fail(f"modalities {list(modalities)} are not usable: each must be one of {list(MODALITIES)}, "
              "and \"pointmap\" is required")
    return [name for m, names in MODALITIES.items() if m in modalities for name in names]


def maps_bytes(num_windows: int, window_length: int, image_size: tuple[int, int],
               modalities=tuple(MODALITIES)) -> int:
    """Bytes of the float32 maps of `num_windows` windows (11 floats per pixel and frame with every
    modality, 4 with point maps alone)."""
    floats = sum(int(np.prod(_MAPS[name])) for name in _map_names(modalities))
    return 4 * floats * num_windows * window_length * image_size[0] * image_size[1]


def new_maps(num_windows: int, window_length: int, image_size: tuple[int, int],
             spill_dir: str | os.PathLike | None = None, modalities=tuple(MODALITIES)) -> dict[str, np.ndarray]:
    """Zero-filled float32 maps of the given modalities for WindowPredictions, by name: in memory, or (spill_dir
    given) mapped from nameless temporary files in that folder, so that the system pages them to disk instead of
    holding them in memory. The files have no name from the start: the system deletes them when
    the maps are freed or the process ends, even when it is killed."""
    shapes = {name: (num_windows, window_length, *image_size, *_MAPS[name]) for name in _map_names(modalities)}
    if spill_dir is None:
        return {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    maps = {}
    for name, shape in shapes.items():
        with tempfile.TemporaryFile(dir=spill_dir, prefix=f".parallax-{name}-") as f:
            _reserve(f.fileno(), 4 * int(np.prod(shape)), Path(spill_dir), name)
            maps[name] = np.memmap(f, np.float32, "w+", shape=shape)  # the map keeps the file open
    return maps


def _reserve(fd: int, size: int, folder: Path, name: str) -> None:
    """Allocate a spill file's blocks before it is mapped: a memory-mapped write to a full disk kills the
    process with SIGBUS, with no message; a reservation that fails is a clear error before the model runs.
    (Without posix_fallocate, on macOS and Windows, the check of free space before the run is what is left.)"""
    if not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return  # a file system that cannot reserve: as without posix_fallocate
        free = shutil.disk_usage(folder).free
        raise EngineError(f"could not reserve {size / 1e9:.2f} GB on the disk of {folder} for the `{name}` "
                          f"predictions while the model runs ({exc.strerror}; {free / 1e9:.2f} GB free)",
                          "free disk space, write the bundle to a larger disk, or reconstruct a shorter "
                          "frame range") from exc


def _fail(problem: str, fix: str = "regenerate the predictions file with `python -m engine reconstruct` "
          "or fix the writer; the format is in docs/formats.md") -> None:
    raise InputError(problem, fix)


def validate(w: WindowPredictions) -> None:
    n, (h, wd), l = int(w.num_frames), tuple(int(v) for v in w.image_size), int(w.window_length)
    if n < 1:
        _fail(f"num_frames is {n}; a clip needs at least one frame")
    if not (np.isfinite(w.fps) and 0 < w.fps <= MAX_FPS):
        _fail(f"fps is {w.fps}; it must be a positive number up to {MAX_FPS:g}")
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
    if int((starts + lengths).max()) < n:  # checked before any per-frame array of n frames is made
        _fail(f"frames {int((starts + lengths).max())}-{n - 1} are not covered by any window (the clip has {n})",
              "predict windows over the whole clip (the last window must end on the last frame)")
    if w.pointmap_frame not in POINTMAP_FRAMES:
        _fail(f"pointmap_frame is {w.pointmap_frame!r}; it must be one of {list(POINTMAP_FRAMES)}")
    if (w.ray_dirs is None) != (w.ray_moments is None):
        _fail("`ray_dirs` and `ray_moments` come together: give both or neither")
    if w.pointmap_frame == "camera" and w.rgb is None:
        _fail("camera-frame point maps come without `rgb`: the alignment needs the frames to follow the "
              "pixels from frame to frame", "save the frames at the maps' resolution as `rgb`")
    for name in _map_names(w.modalities):
        arr = getattr(w, name)
        shape = (g, l, h, wd, *_MAPS[name])
        if not isinstance(arr, np.ndarray) or arr.shape != shape:
            got = getattr(arr, "shape", type(arr).__name__)
            _fail(f"`{name}` has shape {got}, expected {shape} (G, L, H, W[, 3])")
        # Window by window, so that no copy of the whole map is made.
        bad = sum(int(np.count_nonzero(~np.isfinite(arr[i, : lengths[i]]))) for i in range(g))
        if bad:
            _fail(f"`{name}` holds {bad} NaN or inf values; invalid pixels must be marked with "
                  "pointmap_conf = 0 / disparity <= 0, not with NaN")
        largest = max(float(np.abs(arr[i, : lengths[i]]).max()) for i in range(g))
        if largest > MAX_VALUE:
            _fail(f"`{name}` holds values up to {largest:.3g}; beyond {MAX_VALUE:g} the alignment's arithmetic "
                  "loses all precision", "scale the predictions to a scene of ordinary size")
    covered = np.zeros(n, bool)
    for i in range(g):
        conf = np.asarray(w.pointmap_conf[i])  # one read of the window's confidence (it may be on disk)
        if np.any(conf < 0):
            _fail("`pointmap_conf` has negative values; it must be >= 0 (0 = invalid)")
        frames = w.frames_of(i)
        valid = (conf[: lengths[i]] > 0).reshape(len(frames), -1).any(axis=1)
        covered[frames[valid]] = True
        _check_not_degenerate(w, i, conf[: lengths[i]] > 0)
    if not covered.any():
        _fail("every pixel of every window has pointmap_conf = 0: nothing to reconstruct",
              "check the model's output; an all-invalid prediction usually means a wrong input range")
    if not covered.all():
        missing = np.flatnonzero(~covered)
        _fail(f"frames {_ranges(missing)} are not covered by any window with a valid pixel",
              "predict windows over the whole clip (the last window must end on the last frame)")
    if w.rgb is not None and (w.rgb.shape != (n, h, wd, 3) or w.rgb.dtype != np.uint8):
        _fail(f"`rgb` has shape {w.rgb.shape} / dtype {w.rgb.dtype}, expected uint8 {(n, h, wd, 3)}")


def _check_not_degenerate(w: WindowPredictions, i: int, valid: np.ndarray) -> None:
    """InputError when window i's valid pixels have no geometry: every point at one place (an all-zero or
    constant point map) or ray directions of zero length, from which no camera can be solved.

    Whole-map arithmetic with the invalid pixels zeroed, not a gathered copy of the valid ones or reductions along
    the xyz axis: those made this check most of `validate`'s time (0.64 of 0.71 s for 13 Geo4D windows at 160x256)."""
    if not valid.any():
        return
    points = np.asarray(w.pointmap[i, : len(valid)])
    first = points.reshape(-1, 3)[np.argmax(valid)]  # the first valid pixel's point
    offset = np.abs(points - first)
    offset *= valid[..., None]
    if float(offset.max()) <= 1e-12 * max(1.0, float(np.abs(first).max())):
        _fail(f"`pointmap` of window {i} puts all {int(valid.sum())} valid pixels at one point {first.tolist()}: "
              "the prediction is degenerate", "check the model's output (an all-zero map usually means a failed "
              "run); mark pixels without geometry with pointmap_conf = 0")
    if w.ray_dirs is None:  # a model without rays
        return
    dirs = np.asarray(w.ray_dirs[i, : len(valid)])
    short = int(np.count_nonzero(valid & (np.einsum("...i,...i->...", dirs, dirs) < 1e-12)))
    if short:
        _fail(f"`ray_dirs` of window {i} has {short} of {int(valid.sum())} valid pixels with a zero-length "
              "direction: the prediction is degenerate", "check the model's output; ray directions must be unit "
              "vectors")


def _ranges(idx: np.ndarray) -> str:
    parts, start = [], None
    for k, v in enumerate(idx):
        if start is None:
            start = v
        if k + 1 == len(idx) or idx[k + 1] != v + 1:
            parts.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ", ".join(parts[:8]) + (" ..." if len(parts) > 8 else "")


def save_windows(w: WindowPredictions, folder: str | os.PathLike, precision: str = "fp32") -> Path:
    """Write `w` as a window-predictions folder (docs/formats.md); return its path.

    precision: "fp16" or "fp32", how the maps are stored (PRECISIONS).
    `windows.json` is written last, so a folder without it is incomplete; callers that need
    all-or-nothing write into a staged folder (a bundle does)."""
    if precision not in PRECISIONS:
        raise InputError(f"window precision {precision!r} is not one of {sorted(PRECISIONS)}", "pass fp16 or fp32")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in _map_names(w.modalities):
        arr = getattr(w, name)
        dtype = PRECISIONS[precision]
        if dtype == np.float16 and _max_abs(arr) > np.finfo(np.float16).max:
            dtype = np.float32
        _save_array(arr, folder / f"{name}.npy", dtype)
    if w.rgb is not None:
        _save_array(w.rgb, folder / "rgb.npy", np.uint8)
    meta = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "num_frames": int(w.num_frames),
        "fps": float(w.fps), "image_size": [int(v) for v in w.image_size], "window_length": int(w.window_length),
        "window_starts": [int(v) for v in w.window_starts], "window_lengths": [int(v) for v in w.window_lengths],
        "rgb": "rgb.npy" if w.rgb is not None else None, "source": str(w.source),
        "modalities": list(w.modalities), "pointmap_frame": w.pointmap_frame,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1))
    return folder


def _max_abs(arr: np.ndarray) -> float:
    """Largest |value| of a map, window by window (it may be memory-mapped)."""
    return max(float(np.abs(arr[g]).max(initial=0.0)) for g in range(len(arr)))


def _save_array(arr: np.ndarray, target: Path, dtype) -> None:
    if isinstance(arr, np.memmap) and arr.filename and target.exists() and os.path.samefile(arr.filename, target):
        if arr.dtype == dtype:
            return  # already there (a folder saved onto itself); rewriting would truncate the file under its map
        raise InputError(f"{target} would be rewritten in another precision while it is being read",
                         "save the window predictions to another folder")
    if arr.dtype == dtype:
        np.save(target, arr)
        return
    out = np.lib.format.open_memmap(target, mode="w+", dtype=dtype, shape=arr.shape)
    for g in range(len(arr)):  # window by window: no whole converted copy in memory
        out[g] = arr[g]
    out.flush()
    del out


def load_windows(path: str | os.PathLike) -> WindowPredictions:
    """Read window predictions (docs/formats.md).

    Args:
        path: a window-predictions folder (memory-mapped, read-only) or a version-1 `.npz`.

    Returns:
        WindowPredictions: G windows of T frames at (H, W): pointmap [G, T, H, W, 3], pointmap_conf [G, T, H, W],
        disparity [G, T, H, W], ray_dirs and ray_moments [G, T, H, W, 3], window_starts / window_lengths [G].
        InputError names what is wrong with a file that is not that.
    """
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
                    source=str(meta["source"]) if "source" in meta else "",
                    pointmap_frame=str(meta.get("pointmap_frame", "window")))
    except (TypeError, ValueError) as exc:
        _fail(f"{where} has a malformed value ({exc})")


def _load_folder(folder: Path) -> WindowPredictions:
    meta_file = contained(folder, META_FILE, folder)
    if not meta_file.is_file():
        _fail(f"{folder} has no {META_FILE}: it is not a window-predictions folder, or its writing was cut short")
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        _fail(f"{meta_file} is not valid JSON ({type(exc).__name__}: {exc})")
    if not isinstance(meta, dict):
        _fail(f"{meta_file} holds a JSON {type(meta).__name__}, not an object of the format's facts")
    _check_version(meta, meta_file)
    modalities = meta.get("modalities", list(MODALITIES))  # before version 3: every modality
    if not isinstance(modalities, list):
        _fail(f"{meta_file} has a malformed `modalities` ({modalities!r}); it must be a list")
    names = _map_names(modalities) + (["rgb"] if meta.get("rgb") else [])
    arrays = {}
    for name in names:
        file = contained(folder, f"{name}.npy", folder)  # a link out of the folder is refused
        if not file.is_file():
            _fail(f"{folder} lacks {file.name}")
        try:
            arrays[name] = np.load(file, mmap_mode="r", allow_pickle=False)
        # empty or truncated file, damaged header (NumPy 2 parses it with tokenize, which raises TokenError)
        except (OSError, ValueError, EOFError, SyntaxError, tokenize.TokenError) as exc:
            _fail(f"{file} is not a readable .npy file ({type(exc).__name__}: {exc}); a full disk or an "
                  "interrupted copy leaves such files")
    return WindowPredictions(**_facts(meta, meta_file), **arrays)


def _load_npz(path: Path) -> WindowPredictions:
    try:
        data = np.load(path, allow_pickle=False)
        keys = set(data.files)
    except Exception as exc:  # zip or npy header damage
        raise InputError(f"{path} is not a readable .npz file ({exc})",
                         "regenerate it; the format is in docs/formats.md") from exc
    missing = sorted(set(_MAPS) - keys)  # version 1 always had every map
    if missing:
        _fail(f"{path.name} lacks the keys {missing}")
    meta = {k: data[k].item() if data[k].ndim == 0 else data[k] for k in keys - set(_MAPS) - {"rgb"}}
    _check_version(meta, path)
    return WindowPredictions(**_facts(meta, path), **{name: data[name] for name in _MAPS},
                             rgb=data["rgb"] if "rgb" in keys else None)


__all__ = ["WindowPredictions", "MODALITIES", "POINTMAP_FRAMES", "PRECISIONS", "maps_bytes", "new_maps", "save_windows",
           "load_windows", "validate", "FORMAT_NAME", "FORMAT_VERSION"]
