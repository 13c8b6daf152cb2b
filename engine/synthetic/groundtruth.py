"""Ground-truth sequences: what a synthetic scene really looks like, to score reconstructions against."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class GroundTruth:
    """A sequence of N frames, H x W pixels, with exact geometry.

    Attributes:
        name: scene name ("static", "moving_objects", "zoom", "street", "rotation", ...).
        fps: frames per second.
        rgb: uint8[N, H, W, 3], sRGB frames.
        depth: float32[N, H, W], planar z in metres; np.inf where a pixel sees the sky.
        K: float64[N, 3, 3], intrinsics in pixels, pixel centres at +0.5 (per frame: zoom shots).
        camera_to_world: float64[N, 4, 4], OpenCV camera (x right, y down, z forward) to world.
        dynamic: bool[N, H, W], pixels on independently moving objects.
    """

    name: str
    fps: float
    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    camera_to_world: np.ndarray
    dynamic: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.depth.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.depth.shape[1]), int(self.depth.shape[2])

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, name=np.array(self.name), fps=np.array(self.fps), rgb=self.rgb, depth=self.depth,
                            K=self.K, camera_to_world=self.camera_to_world, dynamic=self.dynamic)

    @classmethod
    def load(cls, path: str | Path) -> GroundTruth:
        d = np.load(path, allow_pickle=False)
        return cls(name=str(d["name"]), fps=float(d["fps"]), rgb=d["rgb"], depth=d["depth"], K=d["K"],
                   camera_to_world=d["camera_to_world"], dynamic=d["dynamic"])
