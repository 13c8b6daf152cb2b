"""`--format colmap`: a COLMAP sparse model, binary and text, and the frames (what gsplat and 3DGS read).

    OUT/images/NNNNNN.png                      the frames (clip index, 0-based), at the plate's size
    OUT/sparse/0/cameras.bin, cameras.txt      PINHOLE: one camera, or one per frame when the focal changes
    OUT/sparse/0/images.bin, images.txt        world-to-camera poses (qw qx qy qz, tx ty tz) and 2D points
    OUT/sparse/0/points3D.bin, points3D.txt    the merged static cloud with its tracks

COLMAP's conventions are the engine's: camera x right, y down, z forward; the centre of the top-left pixel at
(0.5, 0.5). World = the bundle's (the first camera). The file layouts follow COLMAP's documentation
(https://colmap.github.io/format.html); `error` is the mean reprojection error of a point's track in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from .cloud import MergedCloud, merge_static_cloud
from .options import ExportOptions
from .plates import plate_name, write_plates
from ..motion import project
from .shot import Shot

PINHOLE_MODEL_ID = 1
POINT2D_DTYPE = np.dtype([("x", "<f8"), ("y", "<f8"), ("point3D_id", "<i8")])
TRACK_DTYPE = np.dtype([("image_id", "<i4"), ("point2D_idx", "<i4")])


def write(shot: Shot, folder: Path, options: ExportOptions) -> str:
    write_plates(shot, options.clip or Path(shot.bundle.source_clip), folder / "images")
    cloud = merge_static_cloud(shot, options.cloud)
    model = colmap_model(shot, cloud)
    sparse = folder / "sparse" / "0"
    sparse.mkdir(parents=True)
    _write_binary(model, sparse)
    _write_text(model, sparse)
    cameras = "1 camera" if len(model.cameras) == 1 else f"{len(model.cameras)} cameras (a zoom)"
    return (f"COLMAP model: {cameras}, {len(shot.frames)} images, {cloud.describe()}; "
            f"mean reprojection error {model.errors.mean():.3g} px")


@dataclass
class ColmapModel:
    """The model's records, in plate pixels.

    cameras: list of (camera_id, width, height, fx, fy, cx, cy).
    images: list of (image_id, qvec float64[4] (w, x, y, z), tvec float64[3], camera_id, name,
        points2D structured array of POINT2D_DTYPE).
    points: ids int64[P], xyz float64[P, 3], rgb uint8[P, 3], errors float64[P] and tracks (list of P arrays of
        TRACK_DTYPE).
    """

    cameras: list
    images: list
    ids: np.ndarray
    xyz: np.ndarray
    rgb: np.ndarray
    errors: np.ndarray
    tracks: list


def colmap_model(shot: Shot, cloud: MergedCloud) -> ColmapModel:
    (ph, pw), (mh, mw) = shot.plate_size, shot.map_size
    K = shot.plate_K()
    w2c = shot.world_to_camera()
    shared = shot.shared_intrinsics()
    cameras = [(i + 1, pw, ph, *K[i][[0, 1, 0, 1], [0, 1, 2, 2]]) for i in range(1 if shared else len(K))]
    obs_xy = cloud.obs_xy * [pw / mw, ph / mh]  # map pixels -> plate pixels (the maps are the plate resized)
    obs_idx = np.empty(len(obs_xy), np.int32)  # each observation's index among its image's 2D points
    xyz = cloud.xyz.astype(np.float64)
    residual = np.empty(len(obs_xy))
    images = []
    for i, frame in enumerate(shot.frames):
        rows = np.flatnonzero(cloud.obs_frame == i)
        obs_idx[rows] = np.arange(len(rows))
        pix, _ = project(K[i], w2c[i], xyz[cloud.obs_point[rows]])
        residual[rows] = np.linalg.norm(pix - obs_xy[rows], axis=1)
        points2D = np.empty(len(rows), POINT2D_DTYPE)
        points2D["x"], points2D["y"] = obs_xy[rows, 0], obs_xy[rows, 1]
        points2D["point3D_id"] = cloud.obs_point[rows] + 1
        images.append((i + 1, rotation_to_quaternion(w2c[i, :3, :3]), w2c[i, :3, 3], 1 if shared else i + 1,
                       plate_name(frame), points2D))
    p = len(xyz)
    order = np.argsort(cloud.obs_point, kind="stable")
    bounds = np.searchsorted(cloud.obs_point[order], np.arange(p + 1))
    tracks = []
    for k in range(p):
        rows = order[bounds[k]:bounds[k + 1]]
        track = np.empty(len(rows), TRACK_DTYPE)
        track["image_id"], track["point2D_idx"] = cloud.obs_frame[rows] + 1, obs_idx[rows]
        tracks.append(track)
    errors = np.bincount(cloud.obs_point, residual, p) / np.maximum(np.bincount(cloud.obs_point, minlength=p), 1)
    return ColmapModel(cameras, images, np.arange(1, p + 1), xyz, cloud.rgb, errors, tracks)


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """float64[4] unit quaternion (w, x, y, z), w >= 0, of a rotation matrix (Shepperd's method)."""
    t = np.trace(R)
    k = int(np.argmax([t, R[0, 0], R[1, 1], R[2, 2]]))
    if k == 0:
        s = 2.0 * np.sqrt(1.0 + t)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif k == 1:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif k == 2:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def _write_binary(model: ColmapModel, folder: Path) -> None:
    with open(folder / "cameras.bin", "wb") as f:
        f.write(np.uint64(len(model.cameras)).tobytes())
        for camera_id, w, h, *params in model.cameras:
            f.write(np.array([camera_id, PINHOLE_MODEL_ID], "<i4").tobytes())
            f.write(np.array([w, h], "<u8").tobytes())
            f.write(np.array(params, "<f8").tobytes())
    with open(folder / "images.bin", "wb") as f:
        f.write(np.uint64(len(model.images)).tobytes())
        for image_id, q, t, camera_id, name, points2D in model.images:
            f.write(np.int32(image_id).tobytes())
            f.write(np.concatenate([q, t]).astype("<f8").tobytes())
            f.write(np.int32(camera_id).tobytes())
            f.write(name.encode() + b"\0")
            f.write(np.uint64(len(points2D)).tobytes())
            f.write(points2D.tobytes())
    with open(folder / "points3D.bin", "wb") as f:
        f.write(np.uint64(len(model.ids)).tobytes())
        for k in range(len(model.ids)):
            f.write(np.uint64(model.ids[k]).tobytes())
            f.write(model.xyz[k].astype("<f8").tobytes())
            f.write(model.rgb[k].astype(np.uint8).tobytes())
            f.write(np.array([model.errors[k]], "<f8").tobytes())
            f.write(np.uint64(len(model.tracks[k])).tobytes())
            f.write(model.tracks[k].tobytes())


def _write_text(model: ColmapModel, folder: Path) -> None:
    with open(folder / "cameras.txt", "w") as f:
        f.write("# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
                f"# Number of cameras: {len(model.cameras)}\n")
        for camera_id, w, h, *params in model.cameras:
            f.write(f"{camera_id} PINHOLE {w} {h} {' '.join(repr(float(p)) for p in params)}\n")
    with open(folder / "images.txt", "w") as f:
        f.write("# Image list with two lines of data per image:\n"
                "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
                "#   POINTS2D[] as (X, Y, POINT3D_ID)\n"
                f"# Number of images: {len(model.images)}\n")
        for image_id, q, t, camera_id, name, points2D in model.images:
            pose = " ".join(repr(float(v)) for v in np.concatenate([q, t]))
            f.write(f"{image_id} {pose} {camera_id} {name}\n")
            # One %-format over the whole line: far faster than a repr per number (1e-9 px is plenty).
            f.write(" ".join(["%.9f %.9f %d"] * len(points2D)) % tuple(chain.from_iterable(points2D.tolist())) + "\n")
    with open(folder / "points3D.txt", "w") as f:
        f.write("# 3D point list with one line of data per point:\n"
                "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
                f"# Number of points: {len(model.ids)}\n")
        for k in range(len(model.ids)):
            x, y, z = model.xyz[k].tolist()
            r, g, b = model.rgb[k].tolist()
            track = " ".join(["%d %d"] * len(model.tracks[k])) % tuple(model.tracks[k].view("<i4").tolist())
            f.write(f"{model.ids[k]} {x!r} {y!r} {z!r} {r} {g} {b} {float(model.errors[k])!r} {track}\n")
