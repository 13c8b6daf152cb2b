"""Depth EXR files: float32, planar z in scene units, with a confidence channel.

Channel `Y` holds depth, so Blender, Nuke and image viewers show it as a grey image;
channel `confidence` holds the per-pixel confidence (0 = invalid, depth then 0 too).

`exr_header` reads what a file declares with the standard library only (the Blender add-on checks a bundle's
depth files with it before importing); the OpenEXR package reads and writes the pixels.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

DEPTH_CHANNEL = "Y"
CONFIDENCE_CHANNEL = "confidence"

_MAGIC = b"\x76\x2f\x31\x01"
_FLOAT = 2  # the EXR pixel type of 32-bit floats
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
    """InputError unless `path` is a whole depth EXR of image_size (H, W) with float Y and confidence channels."""
    header = exr_header(path)
    if not header.scanline:
        raise InputError(f"{path} is a tiled or multi-part EXR, not a Parallax depth map",
                         "re-run the engine to rewrite the bundle's depth maps")
    wanted = {DEPTH_CHANNEL: _FLOAT, CONFIDENCE_CHANNEL: _FLOAT}
    if any(header.channels.get(name) != kind for name, kind in wanted.items()):
        raise InputError(f"{path} has the channels {sorted(header.channels)}, not float {DEPTH_CHANNEL} (depth) and "
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


def write_depth_exr(path: str | Path, depth: np.ndarray, confidence: np.ndarray) -> None:
    """depth, confidence: float32[H, W]; depth is planar z (scene units), 0 where invalid."""
    import OpenEXR  # not in Blender's Python: only the engine writes and reads pixels

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    channels = {
        DEPTH_CHANNEL: np.ascontiguousarray(depth, np.float32),
        CONFIDENCE_CHANNEL: np.ascontiguousarray(confidence, np.float32),
    }
    with OpenEXR.File(header, channels) as f:
        f.write(str(path))


def read_depth_exr(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Returns (depth float32[H, W], confidence float32[H, W])."""
    import OpenEXR

    header = exr_header(path)
    missing = {DEPTH_CHANNEL, CONFIDENCE_CHANNEL} - set(header.channels)
    if missing:
        raise InputError(f"{path} lacks the channels {sorted(missing)} (it has {sorted(header.channels)})",
                         "re-run the engine to rewrite the bundle's depth maps")
    with OpenEXR.File(str(path)) as f:
        ch = f.channels()
        return np.array(ch[DEPTH_CHANNEL].pixels, np.float32), np.array(ch[CONFIDENCE_CHANNEL].pixels, np.float32)
