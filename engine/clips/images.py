"""Reading one frame of an image sequence as the model's input: RGB uint8 sRGB.

PNG, TIFF, JPEG and BMP (8 or 16 bit, grey or colour, with or without alpha) through OpenCV; OpenEXR
(linear light) through the OpenEXR package, converted with the sRGB transfer function.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..formats.sequence import SUPPORTED_SUFFIXES, SUPPORTED_TEXT


def read_image(path: Path) -> np.ndarray:
    """uint8[H, W, 3] sRGB of an image file; alpha is dropped (the colours are kept as stored)."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(f"{path} is not a supported image format",
                         f"convert the sequence to one of {SUPPORTED_TEXT}")
    if suffix == ".exr":
        return linear_to_srgb8(_read_exr(path))
    _check_pixels(path, _declared_size(path))
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"OpenCV cannot read the image {path} (a damaged file, or one larger than "
                         f"{MAX_PIXELS:,} pixels)",
                         f"check the file opens in an image viewer; re-export it as {SUPPORTED_TEXT}")
    if image.dtype == np.uint16:
        image = np.round(image / 257.0).astype(np.uint8)  # 65535 -> 255
    elif image.dtype != np.uint8:
        raise InputError(f"{path} stores {image.dtype} samples",
                         "export 8- or 16-bit integer images, or EXR for floating point")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# The most pixels a frame may have (OpenCV's own default limit, CV_IO_MAX_IMAGE_PIXELS): 32768 x 32768.
MAX_PIXELS = 2**30


def _check_pixels(path: Path, size: tuple[int, int] | None) -> None:
    """InputError before decoding when a frame declares more than MAX_PIXELS (decoding would take that much
    memory, or a file lies about its size)."""
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise InputError(f"{path} declares {size[1]} x {size[0]} pixels, more than the {MAX_PIXELS:,} a frame may "
                         "have", "export the sequence at a working resolution (e.g. 4K)")


def _declared_size(path: Path) -> tuple[int, int] | None:
    """(H, W) from a PNG, BMP or JPEG header without decoding; None for other files or unreadable headers
    (OpenCV then decides)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        w, h = struct.unpack(">II", head[16:24])
        return h, w
    if head[:2] == b"BM" and len(head) >= 26:
        w, h = struct.unpack("<ii", head[18:26])
        return abs(h), abs(w)
    if head[:2] == b"\xff\xd8":
        pos = 2
        while pos + 9 <= len(head) and head[pos] == 0xFF:
            marker, length = head[pos + 1], struct.unpack(">H", head[pos + 2: pos + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame segment
                h, w = struct.unpack(">HH", head[pos + 5: pos + 9])
                return h, w
            pos += 2 + length
    return None


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    """float[..., 3] linear-light RGB -> uint8 sRGB (IEC 61966-2-1), clipped to [0, 1]; NaN becomes 0."""
    x = np.clip(np.nan_to_num(linear.astype(np.float64), nan=0.0), 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.round(srgb * 255).astype(np.uint8)


def _read_exr(path: Path) -> np.ndarray:
    """float32[H, W, 3] linear RGB of the EXR's R, G, B channels (or its grey Y channel)."""
    import OpenEXR  # only EXR plates need it (the GPU benchmark machine, for one, has none)

    from ..formats.exr import exr_header

    # A truncated or foreign file is named before OpenEXR reads pixels.
    header = exr_header(path, "check the file opens in an image viewer; re-export or re-copy it")
    _check_pixels(path, header.size)
    try:
        with OpenEXR.File(str(path), separate_channels=True) as f:
            channels = {name: channel.pixels for name, channel in f.channels().items()}
    except Exception as exc:  # OpenEXR raises bare RuntimeErrors for truncated or foreign files
        raise InputError(f"OpenEXR cannot read {path} ({exc})", "check the file opens in an image viewer") from None
    if all(name in channels for name in "RGB"):
        return np.stack([channels[name] for name in "RGB"], axis=-1).astype(np.float32)
    if "Y" in channels:
        return np.repeat(channels["Y"][:, :, None].astype(np.float32), 3, axis=2)
    raise InputError(f"{path} has no R, G, B or Y channels (it has {', '.join(sorted(channels))})",
                     "write the colour pass to the EXR's R, G, B channels")
