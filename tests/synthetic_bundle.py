"""A synthetic scene with known cameras and exact depth, written as a bundle (for the importer's tests and
benchmark). World = the first camera, OpenCV axes: a floor at y = FLOOR_Y, a back wall at z = WALL_Z that ends
at y = WALL_TOP (sky above, depth 0), a camera that moves, turns and zooms."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.formats.bundle import Reconstruction, write_bundle

FLOOR_Y = 1.5
WALL_Z = 12.0
WALL_TOP = -4.0


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """float64[3, 3] OpenCV camera rotation: yaw about y, pitch about x, roll about z (radians)."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


def synthetic_reconstruction(num_frames: int = 12, size: tuple[int, int] = (48, 64), seed: int = 0,
                             fps: float = 24000 / 1001, sky: bool = True, zoom: bool = True) -> Reconstruction:
    """A Reconstruction with exact depth: a curved, turning, zooming camera path (first camera = identity).

    sky: the wall ends at WALL_TOP and the sky above it has no depth; without sky every pixel has a point.
    zoom: the focal length changes over the shot (else it stays at its first value).
    """
    h, w = size
    t = np.linspace(0.0, 1.0, num_frames)
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    for i, s in enumerate(t):
        c2w[i, :3, :3] = rotation(0.35 * s, -0.12 * s, 0.05 * np.sin(3 * s))
        c2w[i, :3, 3] = [1.5 * s, -0.3 * np.sin(np.pi * s), 2.0 * s ** 2]
    K = np.zeros((num_frames, 3, 3))
    focal = w * (0.9 + 0.4 * t) if zoom else np.full(num_frames, 0.9 * w)
    K[:, 0, 0] = K[:, 1, 1] = focal
    K[:, 0, 2] = 0.53 * w
    K[:, 1, 2] = 0.47 * h
    K[:, 2, 2] = 1.0

    v, u = np.mgrid[0:h, 0:w]
    pixels = np.stack([u + 0.5, v + 0.5, np.ones_like(u, float)], axis=-1)
    depth = np.zeros((num_frames, h, w), np.float32)
    rgb = np.zeros((num_frames, h, w, 3), np.uint8)
    for i in range(num_frames):
        rays = pixels @ np.linalg.inv(K[i]).T  # z = 1: the ray parameter is the planar depth
        d = rays @ c2w[i, :3, :3].T
        o = c2w[i, :3, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            t_floor = np.where(d[..., 1] > 1e-9, (FLOOR_Y - o[1]) / d[..., 1], np.inf)
            t_wall = np.where(d[..., 2] > 1e-9, (WALL_Z - o[2]) / d[..., 2], np.inf)
        wall_y = o[1] + t_wall * d[..., 1]
        if sky:
            t_wall = np.where(wall_y > WALL_TOP, t_wall, np.inf)
        z = np.minimum(t_floor, t_wall)
        seen = np.isfinite(z)
        hit = o + np.where(seen, z, 0.0)[..., None] * d
        depth[i] = np.where(seen, z, 0.0)
        checker = (np.floor(hit[..., 0]) + np.floor(hit[..., 1] * 2) + np.floor(hit[..., 2])) % 2
        rgb[i] = np.where(seen[..., None],
                          np.stack([40 + 150 * checker, 128 + 0 * checker, 200 - 120 * checker], -1), 0)
    rng = np.random.default_rng(seed)
    confidence = np.where(depth > 0, rng.uniform(0.5, 2.0, depth.shape), 0.0).astype(np.float32)
    return Reconstruction(frames=np.arange(num_frames), fps=fps, K=K, camera_to_world=c2w, depth=depth,
                          confidence=confidence, rgb=rgb, source_clip="synthetic-shot.mp4",
                          metadata={"scene": "importer synthetic"})


BALL_RADIUS = 0.5


def ball_centre(s: float) -> np.ndarray:
    """World centre of the moving ball at shot time s in [0, 1]: it crosses the view, clear of floor and wall,
    leaving its place within two frames while the cameras still see that place (a place no other frame sees
    free is no evidence of motion: tests/test_export.py's procedural test measures what that costs)."""
    return np.array([-2.0 + 8.0 * s, 0.0, 6.0])


def add_moving_ball(recon) -> None:
    """Render a red ball moving through the scene into recon's depth, colours and confidence (in place)."""
    h, w = recon.image_size
    v, u = np.mgrid[0:h, 0:w]
    pixels = np.stack([u + 0.5, v + 0.5, np.ones_like(u, float)], axis=-1)
    for i, s in enumerate(np.linspace(0, 1, len(recon.frames))):
        d = pixels @ np.linalg.inv(recon.K[i]).T @ recon.camera_to_world[i, :3, :3].T  # planar-depth rays
        oc = recon.camera_to_world[i, :3, 3] - ball_centre(s)
        a, b, c = np.sum(d * d, -1), 2 * d @ oc, oc @ oc - BALL_RADIUS ** 2
        disc = b * b - 4 * a * c
        t = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
        hit = (t > 0) & np.isfinite(t) & ((recon.depth[i] == 0) | (t < recon.depth[i]))
        recon.depth[i][hit] = t[hit]
        recon.rgb[i][hit] = (220, 30, 30)
        recon.confidence[i][hit] = 1.0


def write_synthetic_bundle(out_dir: str | Path, **kwargs) -> tuple[Path, Reconstruction]:
    recon = synthetic_reconstruction(**kwargs)
    return write_bundle(recon, out_dir), recon
