"""What each synthetic scene contains and how its camera moves, as plain data (no bpy).

Kept apart from the renderer so tests can compute analytic answers (ray-plane and ray-box hits) from the
same numbers the renderer builds the scene from.

World: Blender's (metres, Z up). Cameras are given as OpenCV camera-to-world matrices (x right, y down,
z forward); the renderer converts them to Blender's camera axes. The sensor is 36 mm wide, fitted
horizontally, so fx = fy = lens_mm / 36 * W and the principal point is the image centre.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SENSOR_WIDTH_MM = 36.0
FPS = 24.0


@dataclass
class Box:
    """An axis-aligned box (before `yaw_deg`), textured with a checker-and-noise pattern in object space.

    positions: float64[N, 3] per-frame centres for an independently moving box, else None (static).
    """

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    colors: tuple[tuple[float, float, float], tuple[float, float, float]]
    yaw_deg: float = 0.0
    checker_scale: float = 2.0
    positions: np.ndarray | None = None

    @property
    def moving(self) -> bool:
        return self.positions is not None


@dataclass
class Sphere:
    center: tuple[float, float, float]
    radius: float
    colors: tuple[tuple[float, float, float], tuple[float, float, float]]
    checker_scale: float = 4.0
    positions: np.ndarray | None = None

    @property
    def moving(self) -> bool:
        return self.positions is not None


@dataclass
class Plane:
    """A square of side `size` through `center`: the XY plane turned by `tilt_deg` about X, then `yaw_deg` about Z."""

    center: tuple[float, float, float]
    size: float
    colors: tuple[tuple[float, float, float], tuple[float, float, float]]
    tilt_deg: float = 0.0
    yaw_deg: float = 0.0
    checker_scale: float = 1.0
    moving = False  # planes never move

    @property
    def normal(self) -> np.ndarray:
        """float64[3], unit normal in the world."""
        t, y = np.radians(self.tilt_deg), np.radians(self.yaw_deg)
        n = np.array([0.0, -np.sin(t), np.cos(t)])
        return np.array([np.cos(y) * n[0] - np.sin(y) * n[1], np.sin(y) * n[0] + np.cos(y) * n[1], n[2]])


@dataclass
class Layout:
    """A scene: objects plus, per frame, the camera (OpenCV camera-to-world, float64[N, 4, 4]) and lens (mm)."""

    name: str
    camera_to_world: np.ndarray
    lens_mm: np.ndarray
    boxes: list[Box] = field(default_factory=list)
    spheres: list[Sphere] = field(default_factory=list)
    planes: list[Plane] = field(default_factory=list)
    sky_color: tuple[float, float, float] = (0.55, 0.7, 0.95)

    @property
    def num_frames(self) -> int:
        return int(self.camera_to_world.shape[0])


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV camera-to-world float64[4, 4] for a camera at `eye` looking at `target`, world `up` on screen top."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)  # y points down on screen
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, eye
    return m


def intrinsics(lens_mm: float, size: tuple[int, int]) -> np.ndarray:
    """K float64[3, 3] in pixels (pixel centres at +0.5) for a horizontally fitted 36 mm sensor, size = (H, W)."""
    h, w = size
    f = lens_mm / SENSOR_WIDTH_MM * w
    return np.array([[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]])


def _ramp(n: int) -> np.ndarray:
    """float64[n] from 0 to 1 (0 for a single frame)."""
    return np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)


def _track(eyes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    return np.stack([look_at(e, t) for e, t in zip(eyes, targets)])


GREY = ((0.55, 0.55, 0.5), (0.25, 0.25, 0.22))


def _props() -> tuple[list[Box], list[Sphere], list[Plane]]:
    """A ground, a back wall and a set of textured boxes and spheres around the origin."""
    planes = [Plane((0.0, 0.0, 0.0), 60.0, GREY, checker_scale=1.0),
              Plane((0.0, 14.0, 5.0), 60.0, ((0.7, 0.45, 0.3), (0.35, 0.2, 0.15)), tilt_deg=90.0)]
    boxes = [
        Box((-2.5, 2.0, 0.75), (1.5, 1.5, 1.5), ((0.8, 0.2, 0.15), (0.95, 0.85, 0.3)), yaw_deg=20.0),
        Box((1.8, 4.0, 1.25), (1.2, 2.0, 2.5), ((0.15, 0.35, 0.8), (0.9, 0.9, 0.9)), yaw_deg=-15.0),
        Box((4.5, 7.5, 2.0), (2.5, 2.5, 4.0), ((0.2, 0.6, 0.25), (0.8, 0.75, 0.6)), yaw_deg=35.0),
        Box((-5.0, 8.0, 1.5), (3.0, 2.0, 3.0), ((0.6, 0.3, 0.7), (0.95, 0.95, 0.8))),
        Box((0.3, 0.0, 0.3), (0.6, 0.6, 0.6), ((0.9, 0.5, 0.1), (0.1, 0.1, 0.1)), yaw_deg=45.0, checker_scale=6.0),
    ]
    spheres = [Sphere((-0.8, 3.5, 0.7), 0.7, ((0.9, 0.9, 0.2), (0.2, 0.5, 0.9))),
               Sphere((3.2, 1.5, 0.5), 0.5, ((0.95, 0.3, 0.5), (0.95, 0.95, 0.95)))]
    return boxes, spheres, planes


def _orbit(n: int, start_deg: float, end_deg: float, radius: float, height: float) -> np.ndarray:
    """Camera positions on an arc around the origin; 0 degrees is on the -Y side, looking towards +Y."""
    a = np.radians(start_deg + (end_deg - start_deg) * _ramp(n))
    return np.stack([radius * np.sin(a), -radius * np.cos(a), np.full(n, height)], axis=1)


def static(n: int) -> Layout:
    boxes, spheres, planes = _props()
    eyes = _orbit(n, -25.0, 20.0, 7.0, 1.8)
    eyes[:, 1] += 1.5 * _ramp(n)  # a little dolly in, so the shot is not a pure arc
    targets = np.tile([0.0, 3.0, 1.0], (n, 1))
    return Layout("static", _track(eyes, targets), np.full(n, 30.0), boxes, spheres, planes)


def moving_objects(n: int) -> Layout:
    layout = static(n)
    layout.name = "moving_objects"
    t = _ramp(n)
    layout.boxes.append(Box((0, 0, 0), (1.0, 1.0, 1.0), ((0.95, 0.95, 0.95), (0.9, 0.1, 0.1)), checker_scale=4.0,
                            positions=np.stack([-3.0 + 6.0 * t, np.full(n, 1.0), np.full(n, 0.5)], axis=1)))
    layout.spheres.append(Sphere((0, 0, 0), 0.6, ((0.1, 0.9, 0.9), (0.1, 0.1, 0.4)),
                                 positions=np.stack([1.5 - 1.0 * t, 5.5 - 4.0 * t,
                                                     0.6 + 0.8 * np.abs(np.sin(np.pi * 2 * t))], axis=1)))
    layout.camera_to_world = _track(_orbit(n, -10.0, 10.0, 7.5, 1.8), np.tile([0.0, 3.0, 0.8], (n, 1)))
    return layout


def zoom(n: int) -> Layout:
    boxes, spheres, planes = _props()
    eyes = _orbit(n, -5.0, 5.0, 8.0, 1.7)
    targets = np.tile([0.0, 3.5, 1.0], (n, 1))
    lens = 22.0 + 38.0 * (0.5 - 0.5 * np.cos(np.pi * _ramp(n)))  # eases from 22 mm to 60 mm
    return Layout("zoom", _track(eyes, targets), lens, boxes, spheres, planes)


def street(n: int) -> Layout:
    """A long street: road, pavements, buildings on both sides up to ~250 m away, open sky above."""
    road = Plane((0.0, 120.0, 0.0), 300.0, ((0.3, 0.3, 0.32), (0.18, 0.18, 0.2)), checker_scale=0.5)
    boxes = [Box((side * 5.5, 120.0, 0.1), (2.0, 300.0, 0.2), ((0.6, 0.6, 0.58), (0.45, 0.45, 0.43)),
                 checker_scale=1.0) for side in (-1, 1)]
    rng = np.random.default_rng(7)
    palette = [((0.75, 0.6, 0.45), (0.35, 0.3, 0.25)), ((0.5, 0.55, 0.65), (0.2, 0.22, 0.3)),
               ((0.8, 0.75, 0.7), (0.5, 0.3, 0.25)), ((0.45, 0.6, 0.45), (0.85, 0.85, 0.8))]
    y = -5.0
    while y < 250.0:
        depth_along = rng.uniform(8.0, 16.0)
        for side in (-1, 1):
            height = rng.uniform(6.0, 22.0)
            width = rng.uniform(6.0, 10.0)
            boxes.append(Box((side * (6.5 + width / 2), y + depth_along / 2, height / 2), (width, depth_along, height),
                             palette[int(rng.integers(len(palette)))], checker_scale=0.6))
        y += depth_along + rng.uniform(0.5, 4.0)
    t = _ramp(n)
    eyes = np.stack([-1.5 + 0.8 * np.sin(np.pi * t), 0.0 + 12.0 * t, np.full(n, 1.6)], axis=1)
    targets = eyes + np.stack([0.15 * np.sin(2 * np.pi * t), np.full(n, 20.0), np.full(n, 0.3)], axis=1)
    return Layout("street", _track(eyes, targets), np.full(n, 24.0), boxes, [], [road])


def rotation(n: int) -> Layout:
    """A pan of 70 degrees from nearly one point (2 cm of translation), boxes all around."""
    boxes, spheres, planes = _props()
    boxes += [Box((-7.0, -1.0, 1.5), (2.0, 4.0, 3.0), ((0.3, 0.5, 0.8), (0.9, 0.8, 0.7)), yaw_deg=10.0),
              Box((7.0, 0.5, 2.0), (2.0, 3.0, 4.0), ((0.8, 0.6, 0.2), (0.3, 0.2, 0.1)), yaw_deg=-20.0)]
    planes += [Plane((-12.0, 0.0, 5.0), 60.0, ((0.5, 0.6, 0.5), (0.2, 0.3, 0.2)), tilt_deg=90.0, yaw_deg=90.0),
               Plane((12.0, 0.0, 5.0), 60.0, ((0.6, 0.5, 0.6), (0.3, 0.2, 0.3)), tilt_deg=90.0, yaw_deg=90.0)]
    t = _ramp(n)
    yaw = np.radians(-35.0 + 70.0 * t)
    eyes = np.stack([0.02 * t, np.full(n, -2.0), np.full(n, 1.6)], axis=1)
    targets = eyes + np.stack([np.sin(yaw), np.cos(yaw), np.full(n, -0.1)], axis=1)
    return Layout("rotation", _track(eyes, targets), np.full(n, 26.0), boxes, spheres, planes)


def plane(n: int) -> Layout:
    """A test scene with an analytic answer: a tilted plane filling the view and one box standing on it."""
    planes = [Plane((0.0, 6.0, 0.0), 40.0, GREY, tilt_deg=20.0, checker_scale=1.0)]
    boxes = [Box((0.8, 5.0, 0.5), (1.2, 1.0, 2.2), ((0.8, 0.2, 0.15), (0.95, 0.85, 0.3)))]
    t = _ramp(n)
    eyes = np.stack([-1.0 + 2.0 * t, -1.0 + 0.5 * t, np.full(n, 2.5)], axis=1)
    targets = np.stack([0.3 * t, np.full(n, 6.0), np.full(n, 0.5)], axis=1)
    return Layout("plane", _track(eyes, targets), np.full(n, 35.0), boxes, [], planes)


LAYOUTS = {"static": static, "moving_objects": moving_objects, "zoom": zoom, "street": street,
           "rotation": rotation, "plane": plane}
