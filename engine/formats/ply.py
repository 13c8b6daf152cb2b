"""Binary little-endian PLY point clouds: x y z (float32), red green blue (uint8), confidence (float32), and in
bundles since the motion mattes moving (uint8, 1 = the point belongs to something moving)."""

from pathlib import Path

import numpy as np

from ..errors import InputError

STATIC_DTYPE = np.dtype([
    ("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
    ("red", "u1"), ("green", "u1"), ("blue", "u1"),
    ("confidence", "<f4"),
])
POINT_DTYPE = np.dtype(STATIC_DTYPE.descr + [("moving", "u1")])
_PLY_TYPES = {"<f4": "float", "|u1": "uchar"}


def write_ply(path: str | Path, xyz: np.ndarray, rgb: np.ndarray, confidence: np.ndarray,
              moving: np.ndarray | None = None) -> None:
    """xyz: float32[P, 3] world coordinates; rgb: uint8[P, 3] sRGB; confidence: float32[P];
    moving: bool[P], or None to leave the property out (a cloud without moving points)."""
    pts = np.empty(len(xyz), STATIC_DTYPE if moving is None else POINT_DTYPE)
    pts["x"], pts["y"], pts["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    pts["red"], pts["green"], pts["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    pts["confidence"] = confidence
    if moving is not None:
        pts["moving"] = moving
    header = _header(len(pts), pts.dtype)
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(pts.tobytes())


def read_ply(path: str | Path) -> np.ndarray:
    """Returns a structured array with POINT_DTYPE fields (moving = 0 when the file has no such property, as
    in older bundles). Reads only the layouts write_ply writes; InputError names what is wrong with any other file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc})", "check the file is there and readable") from None
    end = raw.find(b"end_header\n", 0, 4096)
    if not raw.startswith(b"ply\n") or end < 0:
        raise _malformed(path, "it does not start with a PLY header ending in end_header")
    end += len(b"end_header\n")
    header = raw[:end].decode("ascii", "replace")
    layout = next((d for d in (POINT_DTYPE, STATIC_DTYPE)
                   if header == _header(0, d).replace("element vertex 0", _vertex_line(header))), None)
    if layout is None:
        raise _malformed(path, "its header is not the binary little-endian x y z red green blue confidence "
                               "[moving] layout")
    count = int(_vertex_line(header).split()[2])
    if len(raw) - end != count * layout.itemsize:
        raise _malformed(path, f"it declares {count} points ({count * layout.itemsize} bytes) but holds "
                               f"{len(raw) - end} bytes of points")
    points = np.frombuffer(raw, layout, count=count, offset=end)
    if layout is POINT_DTYPE:
        return points
    full = np.zeros(count, POINT_DTYPE)
    for name in STATIC_DTYPE.names:
        full[name] = points[name]
    return full


def _header(count: int, dtype: np.dtype) -> str:
    properties = "".join(f"property {_PLY_TYPES[dtype[name].str]} {name}\n" for name in dtype.names)
    return f"ply\nformat binary_little_endian 1.0\nelement vertex {count}\n{properties}end_header\n"


def _vertex_line(header: str) -> str:
    """The header's `element vertex N` line when N is a plain non-negative number, else an empty string."""
    lines = header.split("\n")
    line = lines[2] if len(lines) > 2 else ""
    parts = line.split(" ")
    ok = len(parts) == 3 and parts[:2] == ["element", "vertex"] and parts[2].isdigit() and len(parts[2]) < 12
    return line if ok else ""


def _malformed(path: Path, why: str) -> InputError:
    return InputError(f"{path} is not a Parallax point cloud: {why}",
                      "re-run the engine to rewrite the bundle (a copy or a full disk may have cut the file short)")
