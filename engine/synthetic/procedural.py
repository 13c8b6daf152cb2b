"""Procedural ground-truth scenes ray-cast with numpy: exact depth and cameras, any length and size.

World axes follow OpenCV (x right, y down, z forward); the ground is the plane y = +1.5 (1.5 m below
the eye); whatever is further than FAR is sky. Every trajectory is a function of u = i / (N - 1) in
[0, 1], so any N samples the same shot.
Textures are simple 3D patterns so that the frames look like something; the geometry is what matters.

`make_scene(name, num_frames, size, seed)` -> GroundTruth; names in PROCEDURAL_SCENES.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..alignment.geometry import intrinsics
from .groundtruth import GroundTruth

# The first five as engine.synthetic.scenes.
PROCEDURAL_SCENES = ("static", "moving_objects", "zoom", "street", "rotation", "forward", "handheld")
GROUND_Y = 1.5
FAR = 300.0  # metres; anything further away is sky (infinite depth)
SKY_RGB_TOP = np.array([110.0, 160.0, 225.0])
SKY_RGB_LOW = np.array([200.0, 220.0, 240.0])


@dataclass
class Shape:
    """A plane (normal . x = offset), an axis-aligned box (lo, hi) or a sphere (centre, radius).

    motion: u -> float[3] offset at time u for moving shapes (dynamic objects); None if static.
    """

    kind: str
    colour: tuple[float, float, float]
    a: np.ndarray  # plane normal / box lo / sphere centre
    b: np.ndarray | float  # plane offset / box hi / sphere radius
    motion: Callable[[float], np.ndarray] | None = None
    tile: float = 1.0  # texture period, metres


@dataclass
class Shot:
    shapes: list[Shape]
    position: Callable[[np.ndarray], np.ndarray]  # u [N] -> [N, 3]
    target: Callable[[np.ndarray], np.ndarray]  # u [N] -> [N, 3] look-at points
    focal_fraction: Callable[[np.ndarray], np.ndarray] = field(default=lambda u: np.full_like(u, 0.8))


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world [N, 4, 4] looking from position [N, 3] at target [N, 3], y pointing down."""
    z = target - position
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    x = np.cross(np.array([0.0, 1.0, 0.0]), z)
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    y = np.cross(z, x)
    c2w = np.tile(np.eye(4), (len(position), 1, 1))
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = x, y, z, position
    return c2w


def _hit(shape: Shape, origin: np.ndarray, dirs: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Ray parameter t of the first hit (dirs need not be unit), np.inf on a miss. dirs: [P, 3]."""
    o = origin - offset
    with np.errstate(divide="ignore", invalid="ignore"):
        if shape.kind == "plane":
            t = (shape.b - o @ shape.a) / (dirs @ shape.a)
        elif shape.kind == "box":
            t0 = (shape.a - o) / dirs
            t1 = (shape.b - o) / dirs
            near = np.nanmax(np.minimum(t0, t1), axis=1)
            far = np.nanmin(np.maximum(t0, t1), axis=1)
            t = np.where((far >= near) & (far > 0), np.where(near > 0, near, far), np.inf)
        else:  # sphere
            oc = o - shape.a
            a = np.sum(dirs * dirs, axis=1)
            b = dirs @ oc
            c = oc @ oc - shape.b**2
            disc = b * b - a * c
            root = np.sqrt(np.maximum(disc, 0.0))
            t_near = (-b - root) / a
            t_far = (-b + root) / a
            t = np.where(disc >= 0, np.where(t_near > 0, t_near, t_far), np.inf)
    return np.where(np.isfinite(t) & (t > 1e-6), t, np.inf)


def _texture(points: np.ndarray, tile: float) -> np.ndarray:
    """A checker mixed with stripes on 3D points [P, 3] -> brightness in [0.55, 1]."""
    cells = np.floor(points / tile + 0.25).astype(np.int64).sum(axis=1) % 2  # +0.25: walls sit on cell edges
    stripes = 0.5 + 0.5 * np.sin(points @ np.array([3.1, 1.7, 2.3]) / tile)
    return 0.55 + 0.3 * cells + 0.15 * stripes


def render(shot: Shot, num_frames: int, size: tuple[int, int], name: str, fps: float = 24.0) -> GroundTruth:
    h, w = size
    u = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    c2w = look_at(shot.position(u), shot.target(u))
    k = intrinsics(shot.focal_fraction(u) * w, h, w)
    v_idx, u_idx = np.mgrid[0:h, 0:w]
    pix = np.stack([u_idx + 0.5, v_idx + 0.5, np.ones_like(u_idx, float)], axis=-1).reshape(-1, 3)
    depth = np.empty((num_frames, h, w), np.float32)
    rgb = np.empty((num_frames, h, w, 3), np.uint8)
    dynamic = np.zeros((num_frames, h, w), bool)
    for i in range(num_frames):
        cam_dirs = pix @ np.linalg.inv(k[i]).T  # z = 1: the ray parameter is planar depth
        dirs = cam_dirs @ c2w[i, :3, :3].T
        origin = c2w[i, :3, 3]
        best = np.full(len(dirs), np.inf)
        colour = np.zeros((len(dirs), 3))
        moving = np.zeros(len(dirs), bool)
        for shape in shot.shapes:
            offset = shape.motion(u[i]) if shape.motion is not None else np.zeros(3)
            t = _hit(shape, origin, dirs, offset)
            closer = t < best
            if not closer.any():
                continue
            best[closer] = t[closer]
            hit = origin + dirs[closer] * t[closer, None] - offset
            colour[closer] = np.array(shape.colour) * _texture(hit, shape.tile)[:, None]
            moving[closer] = shape.motion is not None
        best[best * np.linalg.norm(dirs, axis=1) > FAR] = np.inf  # the ground's far end joins the sky
        sky = ~np.isfinite(best)
        elevation = np.clip(-dirs[sky, 1] / np.linalg.norm(dirs[sky], axis=1), 0, 1)[:, None]
        colour[sky] = SKY_RGB_LOW + (SKY_RGB_TOP - SKY_RGB_LOW) * elevation
        depth[i] = best.reshape(h, w)
        rgb[i] = np.clip(colour, 0, 255).reshape(h, w, 3).astype(np.uint8)
        dynamic[i] = moving.reshape(h, w)
    return GroundTruth(name=name, fps=fps, rgb=rgb, depth=depth, K=k, camera_to_world=c2w, dynamic=dynamic)


def _plane(normal, offset, colour, tile=1.0) -> Shape:
    return Shape("plane", colour, np.asarray(normal, float), float(offset), tile=tile)


def _box(lo, hi, colour, motion=None, tile=0.5) -> Shape:
    return Shape("box", colour, np.asarray(lo, float), np.asarray(hi, float), motion, tile)


def _sphere(centre, radius, colour, motion=None, tile=0.3) -> Shape:
    return Shape("sphere", colour, np.asarray(centre, float), float(radius), motion, tile)


def _room(rng: np.random.Generator) -> list[Shape]:
    """Ground, back and side walls, and a few boxes and spheres between 3 and 9 m."""
    shapes = [
        _plane([0, 1, 0], GROUND_Y, (150, 140, 120)),
        _plane([0, 0, 1], 12.0, (170, 120, 100), tile=1.5),
        _plane([1, 0, 0], -6.0, (120, 150, 170), tile=1.5),
        _plane([1, 0, 0], 6.0, (140, 170, 120), tile=1.5),
    ]
    for _ in range(4):
        x, z = rng.uniform(-3.5, 3.5), rng.uniform(4.0, 9.0)
        sx, sy, sz = rng.uniform(0.4, 1.0, 3)
        shapes.append(_box([x - sx, GROUND_Y - 2 * sy, z - sz], [x + sx, GROUND_Y, z + sz],
                           tuple(rng.uniform(60, 230, 3))))
    for _ in range(2):
        r = rng.uniform(0.3, 0.7)
        shapes.append(_sphere([rng.uniform(-3, 3), GROUND_Y - r - rng.uniform(0, 1), rng.uniform(3.5, 8)], r,
                              tuple(rng.uniform(60, 230, 3))))
    return shapes


def _street(rng: np.random.Generator, length: float, cars_until: float) -> list[Shape]:
    """A road along +z with buildings on both sides up to `length` metres, and parked cars up to `cars_until`."""
    shapes = [_plane([0, 1, 0], GROUND_Y, (110, 110, 115), tile=2.0)]
    for side in (-1, 1):
        z = -5.0
        while z < length:
            depth, gap = rng.uniform(6, 14), rng.uniform(0, 3)
            height = rng.uniform(6, 20)
            x_near = side * rng.uniform(5.0, 7.0)
            lo = [min(x_near, x_near + side * 8), GROUND_Y - height, z]
            hi = [max(x_near, x_near + side * 8), GROUND_Y, z + depth]
            shapes.append(_box(lo, hi, tuple(rng.uniform(80, 220, 3)), tile=2.0))
            z += depth + gap
    for k in range(6 if cars_until <= 60 else 20):  # parked cars on both sides of the road
        lo = np.array([(-4.6, 2.8)[k % 2], GROUND_Y - 1.4, rng.uniform(8, cars_until)])
        shapes.append(_box(lo, lo + np.array([1.8, 1.4, 4.0]), tuple(rng.uniform(60, 230, 3))))
    return shapes


def _dolly(u: np.ndarray) -> np.ndarray:
    return np.stack([-1.2 + 2.4 * u, -0.2 * np.sin(np.pi * u), 0.8 * u], axis=1)


def _pan(u: np.ndarray) -> np.ndarray:
    """Yaw of the rotation shot, radians: a 70 degree pan."""
    return np.radians(-35.0 + 70.0 * u)


def _shake(u: np.ndarray, amplitude: float, phases: np.ndarray) -> np.ndarray:
    """Handheld shake [N, 3]: per axis, three sines of 4, 7 and 13 cycles over the shot (periods of about 16, 9 and
    5 frames at 64 frames) with the given phases [3 frequencies, 3 axes], each of amplitude / 3."""
    cycles = np.array([4.0, 7.0, 13.0])[None, :, None]
    return amplitude / 3 * np.sin(2 * np.pi * cycles * u[:, None, None] + phases[None]).sum(axis=1)


def _scene(name: str, rng: np.random.Generator) -> Shot:
    if name == "static":
        return Shot(_room(rng), _dolly, lambda u: np.stack([0.8 - 1.6 * u, 0.3 + 0 * u, 7.0 + 0 * u], axis=1))
    if name == "moving_objects":
        shapes = _room(rng)
        shapes.append(_sphere([-2.5, GROUND_Y - 0.6, 5.0], 0.6, (230, 60, 60),
                              motion=lambda t: np.array([5.0 * t, -0.8 * np.sin(np.pi * t), 0.0])))
        shapes.append(_box([1.5, GROUND_Y - 1.0, 6.0], [2.3, GROUND_Y, 6.8], (60, 60, 230),
                           motion=lambda t: np.array([-1.5 * t, 0.0, -2.0 * t])))
        return Shot(shapes, _dolly, lambda u: np.stack([0.5 - u, 0.3 + 0 * u, 7.0 + 0 * u], axis=1))
    if name == "zoom":
        return Shot(_room(rng), lambda u: np.stack([0.3 * u, 0 * u, 0.3 * u], axis=1),
                    lambda u: np.stack([0.2 + 0 * u, 0.4 + 0 * u, 8.0 + 0 * u], axis=1),
                    focal_fraction=lambda u: 0.7 * (1.0 + 0.8 * (3 * u**2 - 2 * u**3)))
    if name == "street":
        return Shot(_street(rng, 220.0, 60.0), lambda u: np.stack([0.3 * np.sin(2 * u), 0 * u, 25.0 * u], axis=1),
                    lambda u: np.stack([0.3 * np.sin(2 * u) + 1.5 * np.sin(3 * u), 0.2 + 0 * u, 25.0 * u + 40.0],
                                       axis=1))
    if name == "forward":
        # A long dolly down the road, looking ahead: 120 m of travel, the road's end and the sky beyond FAR.
        return Shot(_street(rng, 520.0, 200.0), lambda u: np.stack([0.4 * np.sin(3 * u), 0.05 * np.sin(9 * u),
                                                                    120.0 * u], axis=1),
                    lambda u: np.stack([0.4 * np.sin(3 * u) + 2.0 * np.sin(2 * u), 0.3 + 0 * u, 120.0 * u + 200.0],
                                       axis=1))
    if name == "rotation":
        shapes = [_plane([0, 1, 0], GROUND_Y, (150, 140, 120))]
        for angle in np.linspace(-np.pi, np.pi, 14, endpoint=False):
            r = rng.uniform(5.0, 10.0)
            x, z = r * np.sin(angle), r * np.cos(angle)
            s = rng.uniform(0.6, 1.4)
            shapes.append(_box([x - s, GROUND_Y - rng.uniform(1, 4), z - s], [x + s, GROUND_Y, z + s],
                               tuple(rng.uniform(60, 230, 3))))
        return Shot(shapes, lambda u: np.stack([0.05 * np.sin(_pan(u)), 0 * u, 0.05 * np.cos(_pan(u))], axis=1),
                    lambda u: np.stack([np.sin(_pan(u)), 0.1 + 0 * u, np.cos(_pan(u))], axis=1))
    if name == "handheld":
        # A slow walk with a handheld camera's shake: the centre +-3 cm, the aim point 7 m ahead +-15 cm (about
        # 0.5 degrees RMS). The shake is the camera's real motion, which a match move must keep.
        shapes, walk, aim = _room(rng), rng.uniform(0, 2 * np.pi, (3, 3)), rng.uniform(0, 2 * np.pi, (3, 3))
        return Shot(shapes, lambda u: np.stack([-0.6 + 1.2 * u, 0 * u, 0.4 * u], axis=1) + _shake(u, 0.03, walk),
                    lambda u: np.stack([0.4 - 0.8 * u, 0.3 + 0 * u, 7.0 + 0 * u], axis=1) + _shake(u, 0.15, aim))
    raise ValueError(f"unknown procedural scene {name!r}; choose one of {PROCEDURAL_SCENES}")


def make_scene(name: str, num_frames: int, size: tuple[int, int] = (160, 256), seed: int = 0) -> GroundTruth:
    """Ray-cast the named scene: N frames of size (H, W). Same seed, same scene (layout and textures)."""
    return render(_scene(name, np.random.default_rng(seed)), num_frames, tuple(size), name)
