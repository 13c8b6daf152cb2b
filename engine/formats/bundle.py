"""The reconstruction bundle: what the engine hands to Blender (public format, docs/formats.md).

    BUNDLE/
      scene.json               cameras, intrinsics, frame numbers, file names
      depth/000000.exr ...     float32 planar depth (channel Y) + confidence, one per frame
      points/000000.ply ...    binary PLY: xyz, rgb, confidence, one per frame, in world coordinates
      windows/                 the raw window predictions, to re-align without the model

World = the first camera, OpenCV axes (x right, y down, z forward). A bundle is written to a
temporary sibling folder and renamed into place, so a failed run never leaves half a bundle.

This module needs only numpy and json for reading, so the Blender add-on can use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .atomic import staged_dir

FORMAT_NAME = "parallax.bundle"
FORMAT_VERSION = 1


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

    def world_points(self, i: int, stride: int = 1, min_confidence: float = 0.0):
        """Back-project frame i. Returns (xyz float32[P, 3] world, rgb uint8[P, 3], confidence float32[P])."""
        h, w = self.image_size
        v, u = np.mgrid[0:h:stride, 0:w:stride]
        z = self.depth[i, v, u]
        conf = self.confidence[i, v, u]
        keep = (z > 0) & (conf > min_confidence)
        u, v, z, conf = u[keep], v[keep], z[keep], conf[keep]
        pix = np.stack([u + 0.5, v + 0.5, np.ones_like(z)], axis=-1) @ np.linalg.inv(self.K[i]).T
        cam = pix * z[:, None]
        c2w = self.camera_to_world[i]
        xyz = (cam @ c2w[:3, :3].T + c2w[:3, 3]).astype(np.float32)
        rgb = self.rgb[i, v, u] if self.rgb is not None else np.full((len(z), 3), 180, np.uint8)
        return xyz, rgb, conf.astype(np.float32)


def check_bundle_target(out_dir: str | Path) -> Path:
    """The absolute out_dir, or InputError when a bundle may not go there: it exists and is
    neither an empty folder nor a bundle (which would be replaced)."""
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not (out_dir / "scene.json").is_file():
        if not out_dir.is_dir() or any(out_dir.iterdir()):
            raise InputError(f"{out_dir} exists and is not a Parallax bundle",
                             "choose a new output folder or an existing bundle to replace")
    return out_dir


def write_bundle(recon: Reconstruction, out_dir: str | Path, windows=None,
                 point_stride: int = 1, min_confidence: float = 0.0) -> Path:
    """Write `recon` as a bundle at out_dir (replacing an old bundle there only on success).

    windows: the WindowPredictions the reconstruction came from (saved in `windows/`), or None.
    point_stride: keep every k-th pixel in x and y for the point clouds (density).
    """
    from .exr import write_depth_exr  # OpenEXR is not in Blender's Python; only writers need it
    from .ply import write_ply
    from ..windows.predictions import save_windows

    out_dir = check_bundle_target(out_dir)
    with staged_dir(out_dir) as tmp:
        (tmp / "depth").mkdir()
        (tmp / "points").mkdir()
        entries = []
        for i, frame in enumerate(recon.frames):
            name = f"{int(frame):06d}"
            write_depth_exr(tmp / "depth" / f"{name}.exr", recon.depth[i], recon.confidence[i])
            xyz, rgb, conf = recon.world_points(i, point_stride, min_confidence)
            write_ply(tmp / "points" / f"{name}.ply", xyz, rgb, conf)
            entries.append({
                "frame": int(frame),
                "K": np.asarray(recon.K[i], float).tolist(),
                "camera_to_world": np.asarray(recon.camera_to_world[i], float).tolist(),
                "depth": f"depth/{name}.exr",
                "points": f"points/{name}.ply",
                "num_points": int(len(xyz)),
            })
        if windows is not None:
            save_windows(windows, tmp / "windows")
        h, w = recon.image_size
        scene = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "source_clip": str(recon.source_clip),
            "fps": float(recon.fps),
            "image_size": [h, w],
            "coordinate_convention": "opencv: x right, y down, z forward; world = first camera; "
                                     "K in pixels with pixel centres at +0.5",
            "depth": {"kind": "planar_z", "channels": {"depth": "Y", "confidence": "confidence"},
                      "invalid": 0.0},
            "points": {"stride": int(point_stride), "min_confidence": float(min_confidence),
                       "color": "sRGB uint8"},
            "windows": "windows" if windows is not None else None,
            "metadata": recon.metadata,
            "frames": entries,
        }
        (tmp / "scene.json").write_text(json.dumps(scene, indent=1))
    return out_dir


@dataclass
class BundleFrame:
    frame: int
    K: np.ndarray  # float64[3, 3]
    camera_to_world: np.ndarray  # float64[4, 4]
    depth_path: Path
    points_path: Path
    num_points: int


@dataclass
class Bundle:
    """A bundle read from disk: the scene.json facts plus paths to the per-frame files."""

    root: Path
    source_clip: str
    fps: float
    image_size: tuple[int, int]
    frames: list[BundleFrame]
    metadata: dict

    def points(self, i: int) -> np.ndarray:
        """Structured array (x, y, z, red, green, blue, confidence) of frame i's points."""
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
    except (OSError, ValueError) as exc:
        raise InputError(f"{scene_file} is not valid JSON ({exc})", "re-run the engine to rewrite the bundle") from exc
    if scene.get("format") != FORMAT_NAME:
        raise InputError(f"{scene_file} has format {scene.get('format')!r}, expected {FORMAT_NAME!r}",
                         "choose a Parallax bundle folder")
    if int(scene.get("version", 0)) > FORMAT_VERSION:
        raise InputError(f"bundle version {scene.get('version')} is newer than this Parallax ({FORMAT_VERSION})",
                         "update Parallax")
    try:
        frames = [
            BundleFrame(
                frame=int(e["frame"]), K=np.array(e["K"], float), camera_to_world=np.array(e["camera_to_world"], float),
                depth_path=root / e["depth"], points_path=root / e["points"], num_points=int(e["num_points"]),
            )
            for e in scene["frames"]
        ]
        h, w = scene["image_size"]
        bundle = Bundle(root=root, source_clip=scene.get("source_clip", ""), fps=float(scene["fps"]),
                        image_size=(int(h), int(w)), frames=frames, metadata=scene.get("metadata", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{scene_file} is malformed ({exc!r})", "re-run the engine to rewrite the bundle") from exc
    if not frames:
        raise InputError(f"{scene_file} lists no frames", "re-run the engine on a clip with at least one frame")
    for f in frames:
        if f.K.shape != (3, 3) or f.camera_to_world.shape != (4, 4):
            raise InputError(f"frame {f.frame} of {scene_file} has a malformed K or camera_to_world",
                             "re-run the engine to rewrite the bundle")
    return bundle
