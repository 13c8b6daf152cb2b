"""The scene camera: keyframed every frame (location, sign-continuous quaternion, lens and shift)."""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from .animation import new_fcurves, set_keys
from .transforms import LensKeys


def build_camera(name: str, matrices: np.ndarray, lens: LensKeys, scene_frames: np.ndarray,
                 clip_range: tuple[float, float]) -> bpy.types.Object:
    """A camera object animated through the N frames.

    matrices: float64[N, 4, 4] Blender camera object matrices (world units).
    scene_frames: int[N] the scene frame of each matrix.
    clip_range: (near, far) clipping distances in world units.
    """
    data = bpy.data.cameras.new(name)
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = lens.sensor_width
    data.clip_start, data.clip_end = clip_range
    obj = bpy.data.objects.new(name, data)
    obj.rotation_mode = "QUATERNION"
    obj.matrix_world = Matrix(matrices[0].tolist())

    quats = np.empty((len(matrices), 4))
    previous = None
    for i, m in enumerate(matrices):
        q = Matrix(m[:3, :3].tolist()).to_quaternion()
        if previous is not None:
            q.make_compatible(previous)  # q and -q are the same rotation; keep the keys continuous
        quats[i] = q
        previous = q

    frames = np.asarray(scene_frames, np.float64)
    curves = new_fcurves(obj, f"{name} Motion")
    for axis in range(3):
        set_keys(curves, "location", axis, frames, matrices[:, axis, 3])
    for axis in range(4):
        set_keys(curves, "rotation_quaternion", axis, frames, quats[:, axis])
    data_curves = new_fcurves(data, f"{name} Lens")
    set_keys(data_curves, "lens", 0, frames, lens.lens)
    set_keys(data_curves, "shift_x", 0, frames, lens.shift_x)
    set_keys(data_curves, "shift_y", 0, frames, lens.shift_y)
    return obj
