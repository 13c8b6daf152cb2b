"""`--format chan`: the camera as a Nuke .chan file (camera.chan), one line per frame:

    frame  tx ty tz  rx ry rz  vertical_fov

frame: scene frame (the clip's first frame is 1, as in Blender). Translation in scene units and rotation in
degrees of the OpenGL camera (x right, y up, looking down -z) in a Y-up world (export/axes.py), rotation order
ZXY (Nuke's camera default: R = Ry Rx Rz). vertical_fov in degrees over the plate's height. Film back: the
focal length follows from the camera's vertical aperture; set Nuke's horizontal aperture to 36 mm and the
vertical to 36 * H / W mm (the plate's aspect), and the focal is fx * 36 / W mm, as on the Blender import's
camera. The principal point has no column in .chan: the command prints it (pixels from the top-left corner).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .axes import gl_camera_to_world
from .options import ExportOptions
from .shot import SENSOR_WIDTH_MM, Shot

FILE = "camera.chan"


def write(shot: Shot, folder: Path, options: ExportOptions) -> str:
    h, w = shot.plate_size
    lines = [" ".join(f"{v + 0.0:.10g}" for v in row) for row in chan_rows(shot)]  # + 0.0: no "-0"
    (folder / FILE).write_text("\n".join(lines) + "\n")
    K = shot.plate_K()
    return (f"{FILE}: {len(shot.frames)} frames; film back {SENSOR_WIDTH_MM:g} x {SENSOR_WIDTH_MM * h / w:.4g} mm, "
            f"focal {K[:, 0, 0].min() * SENSOR_WIDTH_MM / w:.4g}-{K[:, 0, 0].max() * SENSOR_WIDTH_MM / w:.4g} mm, "
            f"principal point ({K[:, 0, 2].mean():.2f}, {K[:, 1, 2].mean():.2f}) px of {w}x{h} (not in .chan)")


def chan_rows(shot: Shot) -> np.ndarray:
    """float64[N, 8]: frame, translation xyz, rotation xyz (degrees, order ZXY), vertical field of view."""
    c2w = gl_camera_to_world(shot.camera_to_world)
    angles = np.array([euler_zxy(m[:3, :3]) for m in c2w])
    angles = np.degrees(np.unwrap(angles, axis=0))  # no 360-degree jumps between frames
    h, w = shot.plate_size
    fx = shot.plate_K()[:, 0, 0]  # square pixels, as the Blender camera: the horizontal focal sets the fov
    vfov = np.degrees(2 * np.arctan(h / (2 * fx)))
    return np.column_stack([shot.scene_frames, c2w[:, :3, 3], angles, vfov])


def euler_zxy(R: np.ndarray) -> np.ndarray:
    """Angles (rx, ry, rz) in radians with R = Ry(ry) @ Rx(rx) @ Rz(rz); rx in [-pi/2, pi/2]."""
    rx = np.arcsin(np.clip(-R[1, 2], -1.0, 1.0))
    ry = np.arctan2(R[0, 2], R[2, 2])
    rz = np.arctan2(R[1, 0], R[1, 1])
    return np.array([rx, ry, rz])
