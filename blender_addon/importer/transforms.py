"""From the engine's OpenCV conventions to Blender's: world axes, camera axes and intrinsics (numpy only).

Engine: world = the first camera, x right, y down, z forward; K in pixels with pixel centres at +0.5.
Blender: world Z up; a camera looks along its local -Z with +Y up; lens in mm on a sensor of stated width,
principal point as shift in units of the sensor-fit dimension (horizontal here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# OpenCV world -> Blender world: x stays, forward (z) becomes +Y, down (y) becomes -Z.
OPENCV_TO_BLENDER_WORLD = np.array([
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, -1.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
])

# Blender camera axes expressed in OpenCV camera axes: y and z flip (applied on the right of camera_to_world).
BLENDER_TO_OPENCV_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])

SENSOR_WIDTH_MM = 36.0


def blender_camera_matrices(camera_to_world: np.ndarray, world: np.ndarray) -> np.ndarray:
    """Blender camera object matrices, float64[N, 4, 4].

    camera_to_world: float64[N, 4, 4] OpenCV camera -> engine world.
    world: float64[4, 4] engine world -> Blender world (OPENCV_TO_BLENDER_WORLD, possibly levelled on the floor).
    """
    return world @ camera_to_world @ BLENDER_TO_OPENCV_CAMERA


@dataclass
class LensKeys:
    """Blender camera settings per frame (sensor fit horizontal, square pixels).

    lens: float64[N] focal length in mm on a sensor sensor_width mm wide.
    shift_x, shift_y: float64[N] principal point offsets in units of the render width (Blender's convention
        for a horizontal sensor fit); +shift_y moves the image window up.
    """

    lens: np.ndarray
    shift_x: np.ndarray
    shift_y: np.ndarray
    sensor_width: float = SENSOR_WIDTH_MM


def lens_from_intrinsics(K: np.ndarray, map_size: tuple[int, int], render_size: tuple[int, int],
                         sensor_width: float = SENSOR_WIDTH_MM) -> LensKeys:
    """Blender lens and shift reproducing K on a sensor sensor_width mm wide.

    K: float64[N, 3, 3] in pixels of the (H, W) = map_size depth maps.
    render_size: (H, W) of the render (the clip's resolution); K is rescaled to it first, so the bundle may be
        computed at a lower processing resolution than the clip.
    fy is not used: Blender cameras have square pixels (fx and fy agree for the engine's outputs).
    """
    mh, mw = map_size
    rh, rw = render_size
    fx = K[:, 0, 0] * rw / mw
    cx = K[:, 0, 2] * rw / mw
    cy = K[:, 1, 2] * rh / mh
    return LensKeys(
        lens=fx * sensor_width / rw,
        shift_x=(rw / 2.0 - cx) / rw,
        shift_y=(cy - rh / 2.0) / rw,
        sensor_width=sensor_width,
    )


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """uint8[...] sRGB -> float32[...] scene-linear (the IEC 61966-2-1 curve, through a 256-entry table).

    255 maps to exactly 1.0, so an alpha channel of 255 may ride along."""
    c = np.arange(256, dtype=np.float64) / 255.0
    table = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)
    return np.take(table, rgb)
