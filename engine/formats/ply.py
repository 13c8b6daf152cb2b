"""Binary little-endian PLY point clouds: x y z (float32), red green blue (uint8), confidence (float32)."""

from pathlib import Path

import numpy as np

from ..errors import InputError

POINT_DTYPE = np.dtype([
    ("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
    ("red", "u1"), ("green", "u1"), ("blue", "u1"),
    ("confidence", "<f4"),
])


def write_ply(path: str | Path, xyz: np.ndarray, rgb: np.ndarray, confidence: np.ndarray) -> None:
    """xyz: float32[P, 3] world coordinates; rgb: uint8[P, 3] sRGB; confidence: float32[P]."""
    pts = np.empty(len(xyz), POINT_DTYPE)
    pts["x"], pts["y"], pts["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    pts["red"], pts["green"], pts["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    pts["confidence"] = confidence
    header = _header(len(pts))
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(pts.tobytes())


def read_ply(path: str | Path) -> np.ndarray:
    """Returns a structured array with POINT_DTYPE fields. Reads only the layout write_ply writes;
    InputError names what is wrong with any other file."""
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
    if header != _header(0).replace("element vertex 0", _vertex_line(header)):
        raise _malformed(path, "its header is not the binary little-endian x y z red green blue confidence layout")
    count = int(_vertex_line(header).split()[2])
    if len(raw) - end != count * POINT_DTYPE.itemsize:
        raise _malformed(path, f"it declares {count} points ({count * POINT_DTYPE.itemsize} bytes) but holds "
                               f"{len(raw) - end} bytes of points")
    return np.frombuffer(raw, POINT_DTYPE, count=count, offset=end)


def _header(count: int) -> str:
    return ("ply\nformat binary_little_endian 1.0\n"
            f"element vertex {count}\n"
            "property float x\nproperty float y\nproperty float z\n"
            "property uchar red\nproperty uchar green\nproperty uchar blue\n"
            "property float confidence\nend_header\n")


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
