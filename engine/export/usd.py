"""`--format usd`: the camera animation and the merged static cloud as one USD stage (shot.usdc, via usd-core).

    /Shot            Xform, the default prim
    /Shot/Camera     UsdGeom.Camera: one time sample per frame of its transform, focal length and aperture offsets
    /Shot/Points     UsdGeom.Points: points, displayColor (linear), widths and a `confidence` primvar

Stage: upAxis Y, the engine's world turned 180 degrees about x (export/axes.py); USD cameras look down -z with
+y up. Time codes are scene frames (the clip's first frame is 1) at timeCodesPerSecond = the clip's rate.
Film back: horizontalAperture 36 and verticalAperture 36 * H / W (the plate's aspect), focalLength fx * 36 / W;
the principal point is the aperture offsets (in the aperture's units). Points are about one voxel wide.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .axes import gl_camera_to_world, gl_points
from .cloud import merge_static_cloud
from .options import ExportOptions
from .shot import SENSOR_WIDTH_MM, Shot

FILE = "shot.usdc"


def write(shot: Shot, folder: Path, options: ExportOptions) -> str:
    try:
        from pxr import Gf, Sdf, Usd, UsdGeom, Vt
    except ImportError as exc:
        raise InputError("USD export needs the usd-core package", "pip install usd-core") from exc
    cloud = merge_static_cloud(shot, options.cloud)
    stage = Usd.Stage.CreateNew(str(folder / FILE))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    frames = shot.scene_frames
    stage.SetStartTimeCode(float(frames[0]))
    stage.SetEndTimeCode(float(frames[-1]))
    stage.SetTimeCodesPerSecond(shot.fps)
    stage.SetFramesPerSecond(shot.fps)
    root = UsdGeom.Xform.Define(stage, "/Shot")
    stage.SetDefaultPrim(root.GetPrim())

    camera = UsdGeom.Camera.Define(stage, "/Shot/Camera")
    h, w = shot.plate_size
    unit = SENSOR_WIDTH_MM / w  # aperture units per plate pixel
    camera.CreateHorizontalApertureAttr(SENSOR_WIDTH_MM)
    camera.CreateVerticalApertureAttr(h * unit)
    xform = camera.AddTransformOp()
    focal = camera.CreateFocalLengthAttr()
    offset_x = camera.CreateHorizontalApertureOffsetAttr()
    offset_y = camera.CreateVerticalApertureOffsetAttr()
    K = shot.plate_K()
    c2w = gl_camera_to_world(shot.camera_to_world)
    for i, frame in enumerate(frames):
        t = Usd.TimeCode(float(frame))
        xform.Set(Gf.Matrix4d(c2w[i].T.tolist()), t)  # Gf matrices act on row vectors: the transpose
        focal.Set(float(K[i, 0, 0] * unit), t)
        # The aperture window is centred on the principal point when the offsets are zero (see docs above).
        offset_x.Set(float((w / 2 - K[i, 0, 2]) * unit), t)
        offset_y.Set(float((K[i, 1, 2] - h / 2) * unit), t)
    depth = np.linalg.norm(cloud.xyz - shot.camera_to_world[:, :3, 3].mean(axis=0), axis=1)
    camera.CreateClippingRangeAttr(Gf.Vec2f(float(0.01 * np.median(depth)), float(100 * np.median(depth))))

    points = UsdGeom.Points.Define(stage, "/Shot/Points")
    points.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(gl_points(cloud.xyz).astype(np.float32)))
    points.CreateWidthsAttr(Vt.FloatArray.FromNumpy(np.full(len(cloud.xyz), cloud.voxel_size, np.float32)))
    colour = points.CreateDisplayColorPrimvar(UsdGeom.Tokens.vertex)
    colour.Set(Vt.Vec3fArray.FromNumpy(srgb_to_linear(cloud.rgb)))
    UsdGeom.PrimvarsAPI(points).CreatePrimvar("confidence", Sdf.ValueTypeNames.FloatArray,
                                              UsdGeom.Tokens.vertex).Set(Vt.FloatArray.FromNumpy(cloud.confidence))
    stage.GetRootLayer().Save()
    return f"{FILE}: camera over {len(frames)} frames, {cloud.describe()}"


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """uint8[..., 3] sRGB -> float32 scene-linear (displayColor is linear)."""
    c = rgb.astype(np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)
