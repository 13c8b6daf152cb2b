"""Resizing one window's maps from the model's processing size to the bundle's map size."""

from __future__ import annotations

import cv2
import numpy as np


def resize_window_maps(maps: dict[str, np.ndarray], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """maps: pointmap [T, H, W, 3], pointmap_conf [T, H, W] and those of the model's other modalities:
    disparity [T, H, W], ray_dirs [T, H, W, 3], ray_moments [T, H, W, 3] (float32) -> the same at size (H', W').

    Values are interpolated bilinearly (cv2's pixel-centre convention, matching the +0.5 pixel
    centres of our intrinsics); a pixel stays valid only where all its source pixels were valid,
    and ray directions are renormalised."""
    h, w = size
    if maps["pointmap"].shape[1:3] == (h, w):
        return maps

    def resize(stack: np.ndarray) -> np.ndarray:
        return np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) for m in stack])

    valid = resize((maps["pointmap_conf"] > 0).astype(np.float32)) > 1 - 1e-6
    out = {name: resize(m) for name, m in maps.items()}
    out["pointmap_conf"] = np.where(valid, out["pointmap_conf"], 0.0).astype(np.float32)
    if "ray_dirs" in out:
        out["ray_dirs"] /= np.maximum(np.linalg.norm(out["ray_dirs"], axis=-1, keepdims=True), 1e-12)
    return out


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [N, H, W, 3] -> [N, H', W', 3] (area filter)."""
    h, w = size
    if frames.shape[1:3] == (h, w):
        return frames
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
