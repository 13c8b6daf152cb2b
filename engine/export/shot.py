"""What every export reads from a bundle: the cameras, the frame numbers and the plate's size.

Cameras stay in the engine's conventions here (OpenCV axes, world = the first camera, K in pixels with pixel
centres at +0.5); each format module converts to its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..formats.bundle import Bundle, read_bundle
from ..formats.exr import read_depth_exr
from ..motion import nearest_depth
from ..reporting import FIRST_FRAME  # clip frame i (0-based) is scene frame i + FIRST_FRAME

# The film back the animation exports (chan, USD) state the focal length on, as the Blender import does.
SENSOR_WIDTH_MM = 36.0


@dataclass
class Shot:
    """A bundle's cameras for export.

    Attributes:
        bundle: the bundle read from disk (paths to its depth maps and point clouds).
        frames: int64[N] clip frame index of each camera (0-based).
        K: float64[N, 3, 3] intrinsics in pixels of the bundle's maps (map_size).
        camera_to_world: float64[N, 4, 4] OpenCV camera -> world (world = the first camera).
        map_size: (H, W) of the depth maps.
        plate_size: (H, W) of the source clip (scene.json's metadata clip_size), else map_size.
        fps: frames per second.
    """

    bundle: Bundle
    frames: np.ndarray
    K: np.ndarray
    camera_to_world: np.ndarray
    map_size: tuple[int, int]
    plate_size: tuple[int, int]
    fps: float

    @property
    def scene_frames(self) -> np.ndarray:
        """int64[N] frame numbers in Blender, Nuke and USD (the clip's first frame is 1)."""
        return self.frames + FIRST_FRAME

    def plate_K(self) -> np.ndarray:
        """float64[N, 3, 3] intrinsics in plate pixels (the maps are the plate resized, so each axis scales)."""
        (mh, mw), (ph, pw) = self.map_size, self.plate_size
        scale = np.diag([pw / mw, ph / mh, 1.0])
        return scale @ self.K

    def shared_intrinsics(self) -> bool:
        """True when every frame has the same K (one camera; else a zoom: one camera per frame)."""
        return bool(np.all(np.abs(self.K - self.K[0]) <= 1e-9 * np.abs(self.K[0]).max()))

    def world_to_camera(self) -> np.ndarray:
        """float64[N, 4, 4] OpenCV world -> camera."""
        return np.linalg.inv(self.camera_to_world)


def load_shot(bundle_path: str | Path) -> Shot:
    """Read a bundle's cameras; InputError when it is not a bundle or its numbers are unusable."""
    bundle = read_bundle(bundle_path)
    K = np.stack([f.K for f in bundle.frames])
    c2w = np.stack([f.camera_to_world for f in bundle.frames])
    if not (np.all(np.isfinite(K)) and np.all(np.isfinite(c2w)) and np.all(K[:, 0, 0] > 0) and np.all(K[:, 1, 1] > 0)):
        raise InputError(f"{bundle.root}/scene.json holds non-finite cameras or non-positive focal lengths",
                         "re-run the engine to rewrite the bundle")
    if not bundle.fps > 0:
        raise InputError(f"the bundle's frame rate is {bundle.fps}", "re-run the engine on a clip with a frame rate")
    plate = bundle.metadata.get("clip_size") or bundle.image_size
    try:
        plate_size = (int(plate[0]), int(plate[1]))
    except (TypeError, ValueError, IndexError) as exc:
        raise InputError(f"{bundle.root}/scene.json has a malformed clip_size {plate!r}",
                         "re-run the engine to rewrite the bundle") from exc
    return Shot(bundle=bundle, frames=np.array([f.frame for f in bundle.frames], np.int64), K=K,
                camera_to_world=c2w, map_size=bundle.image_size, plate_size=plate_size, fps=bundle.fps)


def read_depth_maps(shot: Shot) -> np.ndarray:
    """float32[N, H, W] each frame's depth, the nearest valid depth in a 3 x 3 neighbourhood (inf = none)."""
    out = np.empty((len(shot.frames), *shot.map_size), np.float32)
    for i, f in enumerate(shot.bundle.frames):
        d, _ = read_depth_exr(f.depth_path)
        if d.shape != shot.map_size:
            raise InputError(f"{f.depth_path} is {d.shape[1]}x{d.shape[0]}, the bundle says "
                             f"{shot.map_size[1]}x{shot.map_size[0]}", "re-run the engine to rewrite the bundle")
        out[i] = nearest_depth(d)
    return out
