"""Depth EXR files: float32 planar depth in scene units, a confidence channel and the frame's camera.

Channels (single part, scanline, ZIP):
  Z           planar depth z (0 = invalid): what compositors (Nuke, Fusion, Blender's multilayer files) take as
              depth;
  Y           the same depth, for image viewers and Blender's image loader, which show Y as a grey image (Blender
              5.0 reads a lone Z channel of a single-layer file as garbage, and the add-on loads the depth
              sequence as an image);
  confidence  >= 0, 0 = invalid (depth is then 0 too).
Header (OpenEXR's standard attributes, Imath M44f: row vectors, p' = p M) when the camera is given:
  worldToCamera  world -> the camera space OpenEXR and RenderMan use: x right, y up, z forward (left-handed);
  worldToNDC     world -> NDC, x right and y down from (0, 0) at the display window's top-left corner to (1, 1)
                 at its bottom-right; after the divide by w, the third coordinate is 1 / depth.
Bundles before these files (channels Y and confidence, no header matrices) are still read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenEXR

DEPTH_CHANNEL = "Z"
DISPLAY_CHANNEL = "Y"  # also the depth channel of older bundles
CONFIDENCE_CHANNEL = "confidence"
_OPENCV_TO_EXR_CAMERA = np.diag([1.0, -1.0, 1.0, 1.0])  # y down -> y up


def camera_matrices(K: np.ndarray, camera_to_world: np.ndarray, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """{"worldToCamera", "worldToNDC"}: float32[4, 4] in Imath's row-vector layout (the transposes of the
    column-vector matrices) for a frame of (H, W) = size pixels with intrinsics K [3, 3] (pixel centres at +0.5,
    so pixel coordinates are 0 at the image's left and top edges) and OpenCV camera_to_world [4, 4]."""
    h, w = size
    world_to_camera = np.linalg.inv(camera_to_world)
    ndc = np.zeros((4, 4))
    ndc[0, :3] = K[0] / w
    ndc[1, :3] = K[1] / h
    ndc[2, 3] = 1.0  # -> 1 / z after the divide
    ndc[3, 2] = 1.0  # w = z
    # C order: the binding writes the buffer as laid out, whatever the array's strides say.
    return {"worldToCamera": np.ascontiguousarray((_OPENCV_TO_EXR_CAMERA @ world_to_camera).T, np.float32),
            "worldToNDC": np.ascontiguousarray((ndc @ world_to_camera).T, np.float32)}


def write_depth_exr(path: str | Path, depth: np.ndarray, confidence: np.ndarray, K: np.ndarray | None = None,
                    camera_to_world: np.ndarray | None = None) -> None:
    """depth, confidence: float32[H, W]; depth is planar z (scene units), 0 where invalid.
    K [3, 3] and camera_to_world [4, 4] (OpenCV), when given, go into the header as worldToCamera/worldToNDC."""
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    if K is not None and camera_to_world is not None:
        header.update(camera_matrices(np.asarray(K, float), np.asarray(camera_to_world, float), depth.shape))
    z = np.ascontiguousarray(depth, np.float32)
    channels = {DEPTH_CHANNEL: z, DISPLAY_CHANNEL: z, CONFIDENCE_CHANNEL: np.ascontiguousarray(confidence, np.float32)}
    with OpenEXR.File(header, channels) as f:
        f.write(str(path))


def read_depth_exr(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Returns (depth float32[H, W], confidence float32[H, W]); reads Z, or Y in files of older bundles."""
    with OpenEXR.File(str(path)) as f:
        ch = f.channels()
        depth = ch[DEPTH_CHANNEL if DEPTH_CHANNEL in ch else DISPLAY_CHANNEL]
        return np.array(depth.pixels, np.float32), np.array(ch[CONFIDENCE_CHANNEL].pixels, np.float32)
