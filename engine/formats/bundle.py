"""The reconstruction bundle: what the engine hands to Blender (public format, docs/formats.md).

    BUNDLE/
      scene.json               cameras, intrinsics, frame numbers, file names
      depth/000000.exr ...     float32 planar depth (channels Z and Y) + confidence + the camera, one per frame
      points/000000.ply ...    binary PLY: xyz, rgb, confidence, moving, one per frame, in world coordinates
      mattes/000000.exr ...    motion mattes: 1 where the pixel shows something moving (formats/matte.py);
                               bundles written before them have none
      windows/                 the raw window predictions, to re-align without the model

World = the first camera, OpenCV axes (x right, y down, z forward). A bundle is written to a
temporary sibling folder and renamed into place, so a failed run never leaves half a bundle.

This module needs only numpy and json for reading, so the Blender add-on can use it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from .atomic import recover, staged_dir
from .matte import MOVING_CHANNEL, SCORE_CHANNEL, TESTED_CHANNEL, write_matte_exr
from ..paths import check_outside, check_replaceable, contained, written_by_parallax

FORMAT_NAME = "parallax.bundle"
FORMAT_VERSION = 1
# Frame numbers must fit the 32-bit integers of image sequences and DCCs.
MAX_FRAME = 2**31 - 1


@dataclass
class Reconstruction:
    """The fused result for N frames of H x W pixels.

    Attributes:
        frames: int64[N], frame index of each frame in the source clip (0-based).
        fps: frames per second of the clip.
        K: float64[N, 3, 3], intrinsics in pixels of the H x W maps (pixel centres at +0.5).
        camera_to_world: float64[N, 4, 4], OpenCV camera to world (world = first camera).
        depth: float32[N, H, W], planar z in scene units; 0 where invalid (sky, outliers).
        confidence: float32[N, H, W], >= 0; 0 where invalid.
        rgb: uint8[N, H, W, 3] sRGB colours of the frames, or None (points are then grey).
        source_clip: path of the clip.
        metadata: free-form facts for scene.json (model, alignment settings, timings).
    """

    frames: np.ndarray
    fps: float
    K: np.ndarray
    camera_to_world: np.ndarray
    depth: np.ndarray
    confidence: np.ndarray
    rgb: np.ndarray | None = None
    source_clip: str = ""
    metadata: dict = field(default_factory=dict)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.depth.shape[1]), int(self.depth.shape[2])

    def point_pixels(self, i: int, stride: int = 1, min_confidence: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(v, u) int[P]: the rows and columns of frame i's points (world_points), every stride-th pixel in x and
        y with depth and a confidence above min_confidence."""
        h, w = self.image_size
        v, u = np.mgrid[0:h:stride, 0:w:stride]
        keep = (self.depth[i, v, u] > 0) & (self.confidence[i, v, u] > min_confidence)
        return v[keep], u[keep]

    def world_points(self, i: int, stride: int = 1, min_confidence: float = 0.0):
        """Back-project frame i. Returns (xyz float32[P, 3] world, rgb uint8[P, 3], confidence float32[P])."""
        v, u = self.point_pixels(i, stride, min_confidence)
        z = self.depth[i, v, u]
        conf = self.confidence[i, v, u]
        pix = np.stack([u + 0.5, v + 0.5, np.ones_like(z)], axis=-1) @ np.linalg.inv(self.K[i]).T
        cam = pix * z[:, None]
        c2w = self.camera_to_world[i]
        xyz = (cam @ c2w[:3, :3].T + c2w[:3, 3]).astype(np.float32)
        rgb = self.rgb[i, v, u] if self.rgb is not None else np.full((len(z), 3), 180, np.uint8)
        return xyz, rgb, conf.astype(np.float32)


# The files each frame entry of scene.json names: key -> the names Parallax writes. A matte is optional: bundles
# written before the motion mattes (2026-12-05) have none.
_FRAME_FILES = {"depth": re.compile(r"depth/\d+\.exr"), "points": re.compile(r"points/\d+\.ply"),
                "matte": re.compile(r"mattes/\d+\.exr")}
_OPTIONAL_FRAME_FILES = {"matte"}


def bundle_files(folder: Path) -> set[str] | None:
    """The relative paths of every file the bundle at `folder` names (scene.json, each frame's depth,
    points and matte, the windows folder's files), or None when its scene.json does not say it is a Parallax bundle
    with the file names Parallax writes. Bundles of every Parallax version carry the format marker."""
    from ..windows.predictions import FOLDER_FILES

    try:
        scene = json.loads((Path(folder) / "scene.json").read_text())
        named = {"scene.json"}
        for entry in scene["frames"]:
            for key, pattern in _FRAME_FILES.items():
                if key in _OPTIONAL_FRAME_FILES and key not in entry:
                    continue
                if not pattern.fullmatch(entry[key]):
                    return None
                named.add(entry[key])
        windows = scene.get("windows")
    except (OSError, ValueError, RecursionError, KeyError, TypeError):
        return None
    if not isinstance(scene, dict) or scene.get("format") != FORMAT_NAME:
        return None
    if windows == "windows":
        named |= {f"windows/{name}" for name in FOLDER_FILES}
    elif windows == "windows.npz":  # bundles written before 2026-12-02
        named.add(windows)
    elif windows is not None:
        return None
    return named


def _is_bundle(folder: Path) -> bool:
    return written_by_parallax(folder, bundle_files)


def check_bundle_target(out_dir: str | Path, inputs: dict[str, str | Path | None] | None = None) -> Path:
    """The absolute out_dir, or InputError when a bundle may not go there (engine/paths.py): it
    exists and is neither an empty folder nor a bundle Parallax wrote, or an input lies inside it.

    A bundle's own `windows` folder may be the input (re-aligning a bundle in place): the new bundle
    carries its data over. What a killed earlier write left there is tidied first (atomic.recover)."""
    out_dir = Path(out_dir).expanduser().absolute()
    recover(out_dir, _is_bundle)
    check_replaceable(out_dir, "Parallax bundle", bundle_files)
    own_windows = (out_dir / "windows").resolve()
    check_outside(out_dir, {what: path for what, path in (inputs or {}).items()
                            if path is not None and Path(path).expanduser().resolve() != own_windows})
    return out_dir


# What a bundle keeps of its window predictions: "none", or the maps' precision (windows/predictions.py).
WINDOW_STORAGE = ("fp16", "fp32", "none")


def write_bundle(recon: Reconstruction, out_dir: str | Path, windows=None,
                 point_stride: int = 1, min_confidence: float = 0.0,
                 inputs: dict[str, str | Path | None] | None = None, progress=None,
                 window_storage: str = "fp16") -> Path:
    """Write `recon` as a bundle at out_dir (replacing an old bundle there only on success).

    windows: the WindowPredictions the reconstruction came from (saved in `windows/`), or None.
    window_storage: one of WINDOW_STORAGE; "none" leaves `windows/` out (the bundle cannot be re-aligned).
    point_stride: keep every k-th pixel in x and y for the point clouds (density).
    inputs: the files the bundle was made from, by what they are ("clip", "window predictions"): refused
        when inside out_dir (check_bundle_target).
    progress: called as progress("writing bundle", fraction) after each frame; a job's progress raises
        engine.errors.Cancelled to stop it, and then nothing is left behind.
    """
    from .exr import write_depth_exr  # OpenEXR is not in Blender's Python; only writers need it
    from .ply import write_ply
    from ..motion import frame_motion, nearest_depth
    from ..windows.predictions import save_windows

    if window_storage not in WINDOW_STORAGE:
        raise InputError(f"window storage {window_storage!r} is not one of {list(WINDOW_STORAGE)}",
                         "pass fp16, fp32 or none")
    if window_storage == "none":
        windows = None  # the bundle cannot be re-aligned
    out_dir = check_bundle_target(out_dir, inputs)
    check_cameras(np.asarray(recon.frames, float), recon.fps, np.asarray(recon.K, float),
                  np.asarray(recon.camera_to_world, float), "the reconstruction",
                  "nothing was written; check the window predictions the cameras came from (docs/formats.md)")
    # Each pixel is checked against the other frames' depth: the motion matte, also kept with the points.
    near = np.stack([nearest_depth(d) for d in recon.depth])
    w2c = np.linalg.inv(np.asarray(recon.camera_to_world, float))
    with staged_dir(out_dir, _is_bundle) as tmp:
        (tmp / "depth").mkdir()
        (tmp / "points").mkdir()
        (tmp / "mattes").mkdir()
        entries = []
        for i, frame in enumerate(recon.frames):
            name = f"{int(frame):06d}"
            write_depth_exr(tmp / "depth" / f"{name}.exr", recon.depth[i], recon.confidence[i],
                            recon.K[i], recon.camera_to_world[i])
            moving, score, tested = frame_motion(np.asarray(recon.K, float), w2c, near, recon.depth[i], i)
            write_matte_exr(tmp / "mattes" / f"{name}.exr", moving, score, tested)
            xyz, rgb, conf = recon.world_points(i, point_stride, min_confidence)
            write_ply(tmp / "points" / f"{name}.ply", xyz, rgb, conf,
                      moving[recon.point_pixels(i, point_stride, min_confidence)])
            entries.append({
                "frame": int(frame),
                "K": np.asarray(recon.K[i], float).tolist(),
                "camera_to_world": np.asarray(recon.camera_to_world[i], float).tolist(),
                "depth": f"depth/{name}.exr",
                "points": f"points/{name}.ply",
                "matte": f"mattes/{name}.exr",
                "num_points": int(len(xyz)),
            })
            if progress is not None:
                progress("writing bundle", (i + 1) / (len(recon.frames) + 1))
        if windows is not None:
            save_windows(windows, tmp / "windows", window_storage)
        h, w = recon.image_size
        scene = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "generator": f"parallax {__version__}",
            "source_clip": str(recon.source_clip),
            "fps": float(recon.fps),
            "image_size": [h, w],
            "coordinate_convention": "opencv: x right, y down, z forward; world = first camera; "
                                     "K in pixels with pixel centres at +0.5",
            "depth": {"kind": "planar_z", "channels": {"depth": "Z", "display": "Y", "confidence": "confidence"},
                      "header": ["worldToCamera", "worldToNDC"], "invalid": 0.0},
            "points": {"stride": int(point_stride), "min_confidence": float(min_confidence),
                       "color": "sRGB uint8", "moving": "uint8, 1 where other frames' depth contradicts the "
                                                        "point (engine/motion.py)"},
            "mattes": {"channels": {"moving": MOVING_CHANNEL, "score": SCORE_CHANNEL, "tested": TESTED_CHANNEL},
                       "moving": "1 where other frames' depth contradicts the pixel (engine/motion.py)"},
            "windows": "windows" if windows is not None else None,
            "metadata": _json_numbers(recon.metadata),
            "frames": entries,
        }
        # allow_nan=False: NaN is not JSON (the cameras are checked above, the metadata's NaN are nulls).
        (tmp / "scene.json").write_text(json.dumps(scene, indent=1, allow_nan=False))
    return out_dir


@dataclass
class BundleFrame:
    frame: int
    K: np.ndarray  # float64[3, 3]
    camera_to_world: np.ndarray  # float64[4, 4]
    depth_path: Path
    points_path: Path
    num_points: int
    matte_path: Path | None = None  # None in bundles written before the motion mattes


@dataclass
class Bundle:
    """A bundle read from disk: the scene.json facts plus paths to the per-frame files."""

    root: Path
    source_clip: str
    fps: float
    image_size: tuple[int, int]
    frames: list[BundleFrame]
    metadata: dict

    @property
    def has_mattes(self) -> bool:
        """Every frame has a motion matte (bundles written before them have none)."""
        return all(f.matte_path is not None for f in self.frames)

    def points(self, i: int) -> np.ndarray:
        """Structured array (x, y, z, red, green, blue, confidence, moving) of frame i's points (moving = 0 in
        bundles written before the motion mattes)."""
        from .ply import read_ply

        return read_ply(self.frames[i].points_path)


def read_bundle(path: str | Path) -> Bundle:
    """Read scene.json of a bundle folder; raise InputError naming what is wrong."""
    root = Path(path)
    scene_file = root / "scene.json"
    if not scene_file.is_file():
        raise InputError(f"{root} is not a Parallax bundle (no scene.json)",
                         "choose the folder written by `python -m engine reconstruct` or `align`")
    try:
        scene = json.loads(scene_file.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(f"{scene_file} is not valid JSON ({exc})", "re-run the engine to rewrite the bundle") from exc
    if not isinstance(scene, dict) or scene.get("format") != FORMAT_NAME:
        found = scene.get("format") if isinstance(scene, dict) else type(scene).__name__
        raise InputError(f"{scene_file} has format {found!r}, expected {FORMAT_NAME!r}",
                         "choose a Parallax bundle folder")
    if not isinstance(scene.get("version", 0), int) or scene.get("version", 0) > FORMAT_VERSION:
        raise InputError(f"bundle version {scene.get('version')!r} is not one this Parallax reads "
                         f"(1..{FORMAT_VERSION})", "update Parallax, or re-run the engine to rewrite the bundle")
    try:
        frames = [
            BundleFrame(
                frame=int(e["frame"]), K=np.array(e["K"], float), camera_to_world=np.array(e["camera_to_world"], float),
                depth_path=contained(root, e["depth"], scene_file),
                points_path=contained(root, e["points"], scene_file),
                num_points=int(e["num_points"]),
                matte_path=contained(root, e["matte"], scene_file) if "matte" in e else None,
            )
            for e in scene["frames"]
        ]
        h, w = scene["image_size"]
        bundle = Bundle(root=root, source_clip=scene.get("source_clip", ""), fps=float(scene["fps"]),
                        image_size=(int(h), int(w)), frames=frames, metadata=scene.get("metadata", {}))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(Infinity)
        raise InputError(f"{scene_file} is malformed ({exc!r})", "re-run the engine to rewrite the bundle") from exc
    if not frames:
        raise InputError(f"{scene_file} lists no frames", "re-run the engine on a clip with at least one frame")
    for f in frames:
        if f.K.shape != (3, 3) or f.camera_to_world.shape != (4, 4):
            raise InputError(f"frame {f.frame} of {scene_file} has a malformed K or camera_to_world",
                             "re-run the engine to rewrite the bundle")
    if min(bundle.image_size) < 1 or any(f.num_points < 0 for f in frames):
        raise InputError(f"{scene_file} has image_size {list(bundle.image_size)} or a negative num_points",
                         "re-run the engine to rewrite the bundle")
    check_cameras(np.array([f.frame for f in frames], float), bundle.fps, np.stack([f.K for f in frames]),
                  np.stack([f.camera_to_world for f in frames]), str(scene_file))
    return bundle


def check_cameras(frames: np.ndarray, fps: float, K: np.ndarray, camera_to_world: np.ndarray, where: str,
                  fix: str = "re-run the engine to rewrite the bundle") -> None:
    """Raise InputError when the facts of a reconstruction are not usable numbers.

    frames: int[N] clip frame numbers, 0..MAX_FRAME and increasing; fps: finite, > 0;
    K: float[N, 3, 3] finite, fx and fy > 0, [0, 0, 1] last row; camera_to_world: float[N, 4, 4] finite rigid
    transforms (rotation orthonormal with det +1 to 1e-3, last row [0, 0, 0, 1])."""
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(f"{where}: the frame rate is {fps}; it must be a positive number", fix)
    if np.any(frames < 0) or np.any(frames > MAX_FRAME) or np.any(np.diff(frames) <= 0):
        raise InputError(f"{where}: the frame numbers {_some(frames)} are not increasing numbers in 0..{MAX_FRAME}",
                         fix)
    for name, values in (("K", K), ("camera_to_world", camera_to_world)):
        bad = ~np.isfinite(values).all(axis=(1, 2))
        if bad.any():
            raise InputError(f"{where}: {name} of frame {int(frames[bad][0])} holds NaN or inf "
                             f"({int(bad.sum())} of {len(frames)} frames)", fix)
    bad = ~((K[:, 0, 0] > 0) & (K[:, 1, 1] > 0) & np.all(np.abs(K[:, 2] - [0, 0, 1]) < 1e-9, axis=1)
            & (K[:, 1, 0] == 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{where}: K of frame {int(frames[i])} is not a camera matrix "
                         f"(fx {K[i, 0, 0]:g}, fy {K[i, 1, 1]:g}, last row {K[i, 2].tolist()}); "
                         "focal lengths must be > 0", fix)
    R = camera_to_world[:, :3, :3]
    error = np.abs(R @ R.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2))
    bad = (error > 1e-3) | (np.linalg.det(R) < 0) | np.any(np.abs(camera_to_world[:, 3] - [0, 0, 0, 1]) > 1e-9,
                                                          axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{where}: camera_to_world of frame {int(frames[i])} is not a rotation and a translation "
                         f"(|R Rt - I| = {error[i]:.3g}, det {np.linalg.det(R[i]):.3g}, last row "
                         f"{camera_to_world[i, 3].tolist()})", fix)


def _json_numbers(value):
    """`value` with every NaN or inf float (a diagnostic without a value) replaced by None, so scene.json
    stays standard JSON; numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {k: _json_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_numbers(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _some(values: np.ndarray) -> str:
    shown = ", ".join(str(int(v)) for v in values[:6])
    return f"[{shown}{', ...' if len(values) > 6 else ''}]"
