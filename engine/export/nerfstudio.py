"""`--format nerfstudio`: transforms.json for nerfstudio and instant-ngp, the frames, and the merged cloud.

    OUT/transforms.json     cameras (nerfstudio's documented fields), frames and `ply_file_path`
    OUT/images/NNNNNN.png   the frames at the plate's size
    OUT/points.ply          the merged static cloud, in the same world as the cameras

Conventions (https://docs.nerf.studio/quickstart/data_conventions.html): `transform_matrix` is camera-to-world
with OpenGL camera axes (x right, y up, looking down -z); the world is the engine's turned 180 degrees about x
(export/axes.py). Intrinsics in plate pixels: `fl_x fl_y cx cy w h`, once at the top level, or per frame for a
zoom. `camera_model` is OPENCV with zero distortion.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..formats.ply import write_ply
from .axes import gl_camera_to_world, gl_points
from .cloud import merge_static_cloud
from .options import ExportOptions
from .plates import plate_name, write_plates
from .shot import Shot

PLY_FILE = "points.ply"


def write(shot: Shot, folder: Path, options: ExportOptions) -> str:
    write_plates(shot, options.clip or Path(shot.bundle.source_clip), folder / "images")
    cloud = merge_static_cloud(shot, options.cloud)
    write_ply(folder / PLY_FILE, gl_points(cloud.xyz), cloud.rgb, cloud.confidence)
    (folder / "transforms.json").write_text(json.dumps(transforms(shot), indent=1))
    return f"transforms.json: {len(shot.frames)} frames; {PLY_FILE}: {cloud.describe()}"


def transforms(shot: Shot) -> dict:
    """The transforms.json dictionary of `shot`."""
    K = shot.plate_K()
    h, w = shot.plate_size

    def intrinsics(k) -> dict:
        return {"fl_x": float(k[0, 0]), "fl_y": float(k[1, 1]), "cx": float(k[0, 2]), "cy": float(k[1, 2])}

    c2w = gl_camera_to_world(shot.camera_to_world)
    frames = [{"file_path": f"images/{plate_name(f)}", "transform_matrix": c2w[i].tolist()}
              for i, f in enumerate(shot.frames)]
    meta = {"camera_model": "OPENCV", "w": w, "h": h, "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0}
    if shot.shared_intrinsics():
        meta.update(intrinsics(K[0]))
    else:
        for i, frame in enumerate(frames):
            frame.update(intrinsics(K[i]))
    return {**meta, "frames": frames, "ply_file_path": PLY_FILE}
