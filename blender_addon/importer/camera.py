"""The scene camera: location and rotation keyed every frame (Euler XYZ by default, or sign-continuous
quaternions), lens and shift keyed every frame when they change (zoom), once when they are constant.

A re-import animates the earlier import's camera in place, so what the artist did to it (parenting, children,
constraints, custom properties, the sensor width) survives; its lens follows the artist's sensor width."""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from .animation import new_fcurves, set_keys
from .transforms import SENSOR_WIDTH_MM, lens_from_intrinsics

ROTATION_MODES = ("XYZ", "QUATERNION")
# Lens and shift vary less than this over the shot: keyed once (mm, and fractions of the render width).
_CONSTANT = 1e-6


def build_camera(name: str, matrices: np.ndarray, K: np.ndarray, map_size: tuple[int, int],
                 render_size: tuple[int, int], scene_frames: np.ndarray, clip_range: tuple[float, float],
                 rotation_mode: str = "XYZ", camera: bpy.types.Object | None = None,
                 sensor_width: float = SENSOR_WIDTH_MM) -> bpy.types.Object:
    """A camera object animated through the N frames: a new one, or `camera` (an earlier import's) re-keyed.

    matrices: float64[N, 4, 4] Blender camera object matrices (world units).
    K: float64[N, 3, 3] intrinsics in pixels of the (H, W) map_size; render_size: (H, W) of the render.
    scene_frames: int[N] the scene frame of each matrix.
    clip_range: (near, far) clipping distances in world units.
    rotation_mode: "XYZ" (Euler) or "QUATERNION".
    sensor_width: mm, for a new camera (`camera` keeps its own).
    """
    if camera is None:
        data = bpy.data.cameras.new(name)
        data.sensor_width = sensor_width
        camera = bpy.data.objects.new(name, data)
    data = camera.data
    data.sensor_fit = "HORIZONTAL"
    data.clip_start, data.clip_end = clip_range
    lens = lens_from_intrinsics(K, map_size, render_size, data.sensor_width)
    camera.rotation_mode = rotation_mode
    frames = np.asarray(scene_frames, np.float64)
    # matrix_world is the world matrix: set it with the parent's inverse, keys are in the parent's space.
    local = matrices if camera.parent is None else _local(camera, matrices)
    curves = new_fcurves(camera, f"{name} Motion")
    for axis in range(3):
        set_keys(curves, "location", axis, frames, local[:, axis, 3])
    if rotation_mode == "QUATERNION":
        rotations, path = _quaternions(local), "rotation_quaternion"
    else:
        rotations, path = _eulers(local, rotation_mode), "rotation_euler"
    for axis in range(rotations.shape[1]):
        set_keys(curves, path, axis, frames, rotations[:, axis])
    data_curves = new_fcurves(data, f"{name} Lens")
    for attr, values in (("lens", lens.lens), ("shift_x", lens.shift_x), ("shift_y", lens.shift_y)):
        if np.ptp(values) < _CONSTANT:
            set_keys(data_curves, attr, 0, frames[:1], values[:1])
        else:
            set_keys(data_curves, attr, 0, frames, values)
    return camera


def _local(camera: bpy.types.Object, matrices: np.ndarray) -> np.ndarray:
    """World matrices -> the parent's space (parent at its current pose, parent inverse included)."""
    to_local = np.linalg.inv(np.array(camera.parent.matrix_world) @ np.array(camera.matrix_parent_inverse))
    return to_local @ matrices


def _quaternions(matrices: np.ndarray) -> np.ndarray:
    """float64[N, 4], sign-continuous (q and -q are the same rotation; keys must not flip between them)."""
    quats = np.empty((len(matrices), 4))
    previous = None
    for i, m in enumerate(matrices):
        q = Matrix(m[:3, :3].tolist()).to_quaternion()
        if previous is not None:
            q.make_compatible(previous)
        quats[i] = previous = q
    return quats


def _eulers(matrices: np.ndarray, order: str) -> np.ndarray:
    """float64[N, 3] radians, each the one closest to the previous frame's (no 360-degree jumps)."""
    eulers = np.empty((len(matrices), 3))
    previous = None
    for i, m in enumerate(matrices):
        rotation = Matrix(m[:3, :3].tolist()).normalized()
        e = rotation.to_euler(order) if previous is None else rotation.to_euler(order, previous)
        eulers[i] = previous = e
    return eulers
