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

`exr_header` reads what a file declares with the standard library only (the Blender add-on checks a bundle's
depth files with it before importing); the OpenEXR package (not in Blender's Python) reads and writes the pixels.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

DEPTH_CHANNEL = "Z"
DISPLAY_CHANNEL = "Y"  # also the depth channel of older bundles
CONFIDENCE_CHANNEL = "confidence"
_OPENCV_TO_EXR_CAMERA = np.diag([1.0, -1.0, 1.0, 1.0])  # y down -> y up

_MAGIC = b"\x76\x2f\x31\x01"
FLOAT = 2  # the EXR pixel type of 32-bit floats
_MULTI_PART, _TILED = 0x1000, 0x200
# Enough for the header and the chunk offsets of frames up to about 130 000 lines (one line per chunk).
_HEADER_BYTES = 1 << 20
# Scanlines per chunk of each compression (NONE, RLE, ZIPS, ZIP, PIZ, PXR24, B44, B44A, DWAA, DWAB).
_LINES_PER_CHUNK = (1, 1, 1, 16, 32, 16, 32, 32, 32, 256)


@dataclass
class ExrHeader:
    channels: dict[str, int]  # name -> pixel type (0 uint, 1 half, 2 float)
    size: tuple[int, int]     # (H, W) of the data window
    scanline: bool            # one part of scanlines (what write_depth_exr writes), not tiled or multi-part


def exr_header(path: str | Path, fix: str = "re-run the engine to rewrite the bundle (a copy or a full disk may "
                                            "have cut it short)") -> ExrHeader:
    """The channels and size an EXR declares (the first part's); InputError when the file is not a whole EXR
    (a wrong magic number, a damaged header, or, for single-part scanline files such as the depth maps, pixel
    chunks that end past the end of the file: a truncated copy)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(_HEADER_BYTES)  # the header and the chunk offsets; the pixels are not read
            header, end = _parse_header(data)
            channels = header["channels"]
            x0, y0, x1, y1 = header["dataWindow"]
            h, w = y1 - y0 + 1, x1 - x0 + 1
            if h < 1 or w < 1:
                raise ValueError(f"empty data window {header['dataWindow']}")
            if not header["__flags"] & (_MULTI_PART | _TILED):
                chunks = -(-h // _LINES_PER_CHUNK[header["compression"]])
                for offset in struct.unpack_from(f"<{chunks}Q", data, end):
                    f.seek(offset)
                    _, length = struct.unpack("<ii", f.read(8))
                    if length < 0 or offset + 8 + length > size:
                        raise ValueError(f"a pixel chunk ends past the end of the {size}-byte file")
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc})", "check the file is there and readable") from None
    except (ValueError, KeyError, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a complete EXR file ({exc})", fix) from None
    return ExrHeader(channels, (h, w), not header["__flags"] & (_MULTI_PART | _TILED))


def check_depth_exr(path: str | Path, image_size: tuple[int, int]) -> None:
    """InputError unless `path` is a whole depth EXR of image_size (H, W) with float Y (depth) and confidence
    channels."""
    header = exr_header(path)
    if not header.scanline:
        raise InputError(f"{path} is a tiled or multi-part EXR, not a Parallax depth map",
                         "re-run the engine to rewrite the bundle's depth maps")
    # Blender loads the depth as an image, from Y (which older bundles hold alone, newer ones beside Z).
    if any(header.channels.get(name) != FLOAT for name in (DISPLAY_CHANNEL, CONFIDENCE_CHANNEL)):
        raise InputError(f"{path} has the channels {sorted(header.channels)}, not float {DISPLAY_CHANNEL} (depth) and "
                         f"{CONFIDENCE_CHANNEL}", "re-run the engine to rewrite the bundle's depth maps")
    if header.size != tuple(image_size):
        raise InputError(f"{path} is {header.size[1]}x{header.size[0]}, the bundle's maps are "
                         f"{image_size[1]}x{image_size[0]}", "re-run the engine to rewrite the bundle")


def _parse_header(data: bytes) -> tuple[dict, int]:
    """The attributes this module needs, and the offset just past the header."""
    if data[:4] != _MAGIC:
        raise ValueError("no EXR magic number")
    flags = struct.unpack_from("<i", data, 4)[0]
    header: dict = {"__flags": flags}
    pos = 8
    while data[pos] != 0:
        name, pos = _string(data, pos)
        kind, pos = _string(data, pos)
        size = struct.unpack_from("<i", data, pos)[0]
        value = data[pos + 4: pos + 4 + size]
        if size < 0 or len(value) != size:
            raise ValueError(f"attribute {name!r} runs past the end of the file")
        pos += 4 + size
        if name == "channels" and kind == "chlist":
            header["channels"] = _channels(value)
        elif name == "dataWindow" and kind == "box2i":
            header["dataWindow"] = struct.unpack("<4i", value)
        elif name == "compression" and kind == "compression":
            if value[0] >= len(_LINES_PER_CHUNK):
                raise ValueError(f"unknown compression {value[0]}")
            header["compression"] = value[0]
    return header, pos + 1


def _string(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\0", pos)
    return data[pos:end].decode("ascii"), end + 1


def _channels(value: bytes) -> dict[str, int]:
    channels, pos = {}, 0
    while value[pos] != 0:
        name, pos = _string(value, pos)
        channels[name] = struct.unpack_from("<i", value, pos)[0]
        pos += 16  # pixel type, pLinear + 3 reserved, x and y sampling
    return channels


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
    import OpenEXR  # not in Blender's Python: only the engine writes and reads pixels

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    if K is not None and camera_to_world is not None:
        header.update(camera_matrices(np.asarray(K, float), np.asarray(camera_to_world, float), depth.shape))
    z = np.ascontiguousarray(depth, np.float32)
    channels = {DEPTH_CHANNEL: z, DISPLAY_CHANNEL: z, CONFIDENCE_CHANNEL: np.ascontiguousarray(confidence, np.float32)}
    with OpenEXR.File(header, channels) as f:
        f.write(str(path))


def read_depth_exr(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Returns (depth float32[H, W], confidence float32[H, W]); reads Z, or Y in files of older bundles."""
    import OpenEXR

    channels = exr_header(path).channels
    if CONFIDENCE_CHANNEL not in channels or not {DEPTH_CHANNEL, DISPLAY_CHANNEL} & set(channels):
        raise InputError(f"{path} has the channels {sorted(channels)}, not depth ({DEPTH_CHANNEL}, "
                         f"or {DISPLAY_CHANNEL} in older bundles) and {CONFIDENCE_CHANNEL}",
                         "re-run the engine to rewrite the bundle's depth maps")
    with OpenEXR.File(str(path)) as f:
        ch = f.channels()
        depth = ch[DEPTH_CHANNEL if DEPTH_CHANNEL in ch else DISPLAY_CHANNEL]
        return np.array(depth.pixels, np.float32), np.array(ch[CONFIDENCE_CHANNEL].pixels, np.float32)
