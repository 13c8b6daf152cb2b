"""Binary little-endian PLY point clouds: x y z (float32), red green blue (uint8), confidence (float32)."""

from pathlib import Path

import numpy as np

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
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(pts)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        "property float confidence\nend_header\n"
    )
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(pts.tobytes())


def read_ply(path: str | Path) -> np.ndarray:
    """Returns a structured array with POINT_DTYPE fields. Reads only files written by write_ply."""
    with open(path, "rb") as f:
        raw = f.read()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode("ascii").splitlines()
    count = next(int(line.split()[2]) for line in header if line.startswith("element vertex"))
    return np.frombuffer(raw, POINT_DTYPE, count=count, offset=end)
