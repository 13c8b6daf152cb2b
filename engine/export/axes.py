"""The graphics convention of nerfstudio, Nuke and USD, from the engine's OpenCV one.

Camera: x right, y up, looking down -z (OpenGL). World: the engine's world turned 180 degrees about x, so
+y is up when the first camera is level and the first camera sits at the origin looking down -z.
"""

from __future__ import annotations

import numpy as np

FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


def gl_camera_to_world(camera_to_world: np.ndarray) -> np.ndarray:
    """float64[N, 4, 4] OpenCV camera -> world, to OpenGL camera -> Y-up world."""
    return FLIP_YZ @ camera_to_world @ FLIP_YZ


def gl_points(xyz: np.ndarray) -> np.ndarray:
    """float[P, 3] OpenCV world points, in the Y-up world."""
    return xyz * np.array([1.0, -1.0, -1.0], xyz.dtype)
