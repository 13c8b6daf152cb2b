"""Lens distortion: Blender's four models (Movie Clip > Camera > Lens), in the engine's pixels (x right, y down
from the plate's top-left corner), and undistorting frames with OpenCV's remap.

The formulas are libmv's, which Blender's tracker and its Movie Distortion node use. (u, v) is a pixel of the
plate, (cx, cy) the principal point, f the focal length, both in plate pixels; undistorted normalised
coordinates x = (u - cx) / f, y = (v - cy) / f, r2 = x^2 + y^2:

- polynomial (k1 k2 k3): x_d = x (1 + k1 r2 + k2 r2^2 + k3 r2^3), y_d likewise; OpenCV's model with
  (k1, k2, p1 = 0, p2 = 0, k3).
- division (k1 k2): x_d = x / (1 + k1 r2 + k2 r2^2), y_d likewise (r of the undistorted point).
- brown (k1 k2 k3 k4 p1 p2): radial 1 + k1 r2 + k2 r2^2 + k3 r2^3 + k4 r2^4, tangential
  x_d += 2 p1 x y + p2 (r2 + 2 x^2), y_d += p1 (r2 + 2 y^2) + 2 p2 x y: OpenCV's order and axes (with a k4 r2^4
  OpenCV lacks). Blender counts y up with libmv's tangential order, so its (p1, p2) are (p2, -p1) here: the add-on
  sends them converted.
- nuke (k1 k2): defined from the distorted side, normalised by half the plate's larger side s instead of f:
  x_d = (u_d - cx) / s, r_d2 = x_d^2 + y_d^2, x_u = x_d / (1 + k1 r_d2 + k2 r_d2^2), y_u likewise.

Each model is closed form one way (polynomial, division and Brown from undistorted to distorted, Nuke back);
the other way is solved per point by Newton's method on that closed form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

# Coefficients of each model, in the order the options take them.
MODELS = {"polynomial": ("k1", "k2", "k3"), "division": ("k1", "k2"), "nuke": ("k1", "k2"),
          "brown": ("k1", "k2", "k3", "k4", "p1", "p2")}
NEWTON_STEPS = 20


@dataclass(frozen=True)
class Lens:
    """A distorting lens. model: one of MODELS; coefficients: its MODELS order; focal: plate pixels (unused by
    nuke); principal: (cx, cy) plate pixels; plate_size: (H, W) of the plate."""

    model: str
    coefficients: tuple[float, ...]
    focal: float
    principal: tuple[float, float]
    plate_size: tuple[int, int]

    def __post_init__(self):
        check_distortion(self.model, self.coefficients, focal_known=self.focal > 0)

    def to_json(self) -> dict:
        return {"model": self.model, "coefficients": list(self.coefficients), "focal": self.focal,
                "principal_point": list(self.principal), "plate_size": list(self.plate_size)}

    @classmethod
    def from_json(cls, data: dict) -> Lens:
        """The lens to_json wrote (scene.json metadata.undistorted)."""
        return cls(data["model"], tuple(data["coefficients"]), float(data["focal"]),
                   tuple(data["principal_point"]), tuple(data["plate_size"]))

    def distort(self, points: np.ndarray) -> np.ndarray:
        """Where the lens puts undistorted plate pixels points [..., 2] (x, y): distorted plate pixels [..., 2]."""
        points = np.asarray(points, np.float64)
        if self.model == "nuke":
            return _newton(self._nuke_undistort, points)
        return self._forward(points)

    def undistort(self, points: np.ndarray) -> np.ndarray:
        """Distorted plate pixels [..., 2] back to undistorted plate pixels [..., 2]."""
        points = np.asarray(points, np.float64)
        if self.model == "nuke":
            return self._nuke_undistort(points)
        return _newton(self._forward, points)

    def _forward(self, points: np.ndarray) -> np.ndarray:
        """polynomial, division, brown: undistorted -> distorted pixels, closed form."""
        c = np.asarray(self.principal)
        x, y = np.moveaxis((points - c) / self.focal, -1, 0)
        r2 = x * x + y * y
        k = self.coefficients
        if self.model == "division":
            radial = 1.0 / (1.0 + k[0] * r2 + k[1] * r2 * r2)
            xd, yd = x * radial, y * radial
        else:
            k1, k2, k3 = k[:3]
            k4, p1, p2 = k[3:] if self.model == "brown" else (0.0, 0.0, 0.0)
            radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * (k3 + r2 * k4)))
            xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
            yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([xd, yd], axis=-1) * self.focal + c

    def _nuke_undistort(self, points: np.ndarray) -> np.ndarray:
        """nuke: distorted -> undistorted pixels, closed form."""
        c = np.asarray(self.principal)
        s = max(self.plate_size) / 2.0
        d = (points - c) / s
        r2 = np.sum(d * d, axis=-1, keepdims=True)
        return d / (1.0 + self.coefficients[0] * r2 + self.coefficients[1] * r2 * r2) * s + c


def check_distortion(model: str, coefficients: tuple[float, ...], focal_known: bool) -> None:
    """Refuse (InputError) a distortion model without its coefficients, or one normalised by the focal length
    (all but nuke) without a known focal."""
    if model not in MODELS:
        raise InputError(f"unknown distortion model {model!r}", f"use one of {', '.join(MODELS)}")
    names = MODELS[model]
    if len(coefficients) != len(names):
        raise InputError(f"the {model} distortion model takes {len(names)} coefficients ({' '.join(names)}), "
                         f"not {len(coefficients)}", f"pass --distortion {' '.join(names)}")
    if model != "nuke" and not focal_known:
        raise InputError(f"the {model} distortion model is measured in focal lengths, and no focal length is "
                         "given", "pass the lens' --focal (and --sensor-width), as in Movie Clip > Camera")


def _newton(mapping, target: np.ndarray) -> np.ndarray:
    """Points p [..., 2] with mapping(p) = target, by Newton's method from p = target (the lens is close to the
    identity), with a central-difference Jacobian (pixels)."""
    p = target.copy()
    h = 1e-3
    for _ in range(NEWTON_STEPS):
        residual = mapping(p) - target
        jx = (mapping(p + [h, 0.0]) - mapping(p - [h, 0.0])) / (2 * h)
        jy = (mapping(p + [0.0, h]) - mapping(p - [0.0, h])) / (2 * h)
        det = jx[..., 0] * jy[..., 1] - jy[..., 0] * jx[..., 1]
        det = np.where(np.abs(det) > 1e-12, det, 1e-12)
        # [dx, dy] = J^-1 residual, J = [jx jy] (columns)
        dx = (jy[..., 1] * residual[..., 0] - jy[..., 0] * residual[..., 1]) / det
        dy = (-jx[..., 1] * residual[..., 0] + jx[..., 0] * residual[..., 1]) / det
        p = p - np.stack([dx, dy], axis=-1)
    return p


def distortion_uv_map(lens: Lens) -> np.ndarray:
    """float32[H, W, 2] at the plate's size: for each pixel of the distorted plate, where its light falls in
    the undistorted image, as UV (0..1 of the width and height, pixel centres at +0.5, v counted from the
    bottom as Blender's Map UV node reads it). Sampling an undistorted image there distorts it."""
    h, w = lens.plate_size
    v, u = np.mgrid[0:h, 0:w]
    source = lens.undistort(np.stack([u + 0.5, v + 0.5], axis=-1))
    return np.stack([source[..., 0] / w, 1.0 - source[..., 1] / h], axis=-1).astype(np.float32)


def undistort_frames(frames: np.ndarray, lens: Lens) -> np.ndarray:
    """Frames [N, H, W, C] (uint8 or float32) of the plate at any size (each axis scaled from the plate's), undistorted:
    each output pixel takes the plate's colour where the lens put it (bilinear; outside the plate: black)."""
    import cv2

    n, h, w = frames.shape[:3]
    ph, pw = lens.plate_size
    sx, sy = pw / w, ph / h
    v, u = np.mgrid[0:h, 0:w]
    plate = np.stack([(u + 0.5) * sx, (v + 0.5) * sy], axis=-1)  # pixel centres in plate pixels
    source = lens.distort(plate)
    map_x = (source[..., 0] / sx - 0.5).astype(np.float32)
    map_y = (source[..., 1] / sy - 0.5).astype(np.float32)
    return np.stack([cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
                     .reshape(frame.shape) for frame in frames])  # remap drops a single channel's axis
