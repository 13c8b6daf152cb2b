"""The rendered ground truth against analytic geometry: depth convention, cameras, intrinsics, dynamic mask.

Scenes are rendered for real (Blender, Cycles on the CPU) at a tiny size into a per-session cache.
"""

import numpy as np
import pytest

from engine.errors import InputError
from engine.synthetic.scenes import SCENE_NAMES, load_scene
from harness.layouts import LAYOUTS

SIZE = (48, 72)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("scenes")


def camera_rays(K, camera_to_world, size):
    """World origin float64[3] and directions float64[H, W, 3] scaled so that t along them is planar z."""
    h, w = size
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)
    dirs_cam = pix @ np.linalg.inv(K).T  # z = 1
    return camera_to_world[:3, 3], dirs_cam @ camera_to_world[:3, :3].T


def hit_plane(origin, dirs, plane):
    """t (planar z) where rays meet the finite square plane, inf where they miss."""
    n = plane.normal
    c = np.asarray(plane.center, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ((c - origin) @ n) / (dirs @ n)
    p = origin + t[..., None] * dirs - c
    yaw = np.radians(plane.yaw_deg)
    ex = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    ey = np.cross(n, ex)
    inside = (np.abs(p @ ex) <= plane.size / 2) & (np.abs(p @ ey) <= plane.size / 2) & (t > 0)
    return np.where(inside, t, np.inf)


def hit_box(origin, dirs, center, size):
    """t where rays meet an axis-aligned box (slab method), inf where they miss."""
    lo = np.asarray(center, float) - np.asarray(size, float) / 2
    hi = lo + np.asarray(size, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - origin) / dirs, (hi - origin) / dirs
    near = np.nanmax(np.minimum(t1, t2), axis=-1)
    far = np.nanmin(np.maximum(t1, t2), axis=-1)
    return np.where((near <= far) & (near > 0), near, np.inf)


def hit_sphere(origin, dirs, center, radius):
    oc = origin - np.asarray(center, float)
    a = np.sum(dirs * dirs, -1)
    b = 2 * dirs @ oc
    disc = b * b - 4 * a * (oc @ oc - radius * radius)
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def interior(depth):
    """Pixels whose 3x3 neighbourhood is one smooth surface (no silhouette edge, where a pixel may see either)."""
    inv = np.where(np.isfinite(depth), 1.0 / depth, 0.0)
    pad = np.pad(inv, 1, mode="edge")
    neigh = np.stack([pad[1 + dy:1 + dy + depth.shape[0], 1 + dx:1 + dx + depth.shape[1]]
                      for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    second = np.abs(neigh[1] + neigh[7] - 2 * inv) + np.abs(neigh[3] + neigh[5] - 2 * inv)
    return np.isfinite(depth) & (second < 1e-3 * inv)


def test_depth_is_planar_z_of_a_known_plane_and_box(cache):
    gt = load_scene("plane", num_frames=2, size=SIZE, samples=1, cache_dir=cache)
    layout = LAYOUTS["plane"](2)
    assert gt.rgb.shape == (2, *SIZE, 3) and gt.rgb.dtype == np.uint8 and gt.rgb.std() > 10  # textured
    rotations = gt.camera_to_world[:, :3, :3]
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (2, 3, 3)),
                               atol=1e-12)  # exactly orthonormal, so rotation metrics have no rounding floor
    box = layout.boxes[0]
    for i in range(2):
        origin, dirs = camera_rays(gt.K[i], gt.camera_to_world[i], SIZE)
        expected = np.minimum(hit_plane(origin, dirs, layout.planes[0]), hit_box(origin, dirs, box.center, box.size))
        ok = interior(expected)
        assert ok.mean() > 0.8
        rel = np.abs(gt.depth[i][ok] - expected[ok]) / expected[ok]
        assert np.median(rel) < 1e-5 and rel.max() < 1e-3
        # Ray distance (the other common convention) would be off by 1/cos(angle to the axis): 3% at the corners.
        ray_length = expected * np.linalg.norm(dirs, axis=-1) / np.linalg.norm(dirs[SIZE[0] // 2, SIZE[1] // 2])
        assert np.abs(gt.depth[i][0, 0] - ray_length[0, 0]) > 0.02 * expected[0, 0]


def test_reprojected_depth_matches_between_frames(cache):
    gt = load_scene("moving_objects", num_frames=3, size=SIZE, samples=1, cache_dir=cache)
    i, j = 0, 2
    h, w = SIZE
    origin, dirs = camera_rays(gt.K[i], gt.camera_to_world[i], SIZE)
    points = origin + gt.depth[i][..., None] * dirs  # world, inf where sky
    world_to_j = np.linalg.inv(gt.camera_to_world[j])
    cam = points @ world_to_j[:3, :3].T + world_to_j[:3, 3]
    uvw = cam @ gt.K[j].T
    with np.errstate(invalid="ignore", divide="ignore"):
        u, v = uvw[..., 0] / uvw[..., 2] - 0.5, uvw[..., 1] / uvw[..., 2] - 0.5  # -> array indices
    # Inverse depth is affine in pixel coordinates on a plane, so bilinear interpolation of it is exact there.
    inv_j = np.where(np.isfinite(gt.depth[j]), 1.0 / gt.depth[j], np.nan)
    valid = (interior(gt.depth[i]) & ~gt.dynamic[i] & (u >= 0) & (u < w - 1) & (v >= 0) & (v < h - 1))
    u0, v0 = np.floor(u[valid]).astype(int), np.floor(v[valid]).astype(int)
    fu, fv = u[valid] - u0, v[valid] - v0
    sampled = ((1 - fu) * (1 - fv) * inv_j[v0, u0] + fu * (1 - fv) * inv_j[v0, u0 + 1]
               + (1 - fu) * fv * inv_j[v0 + 1, u0] + fu * fv * inv_j[v0 + 1, u0 + 1])
    rel = np.abs(sampled * cam[valid][:, 2] - 1.0)
    seen = np.isfinite(rel)
    assert valid.sum() > 0.5 * h * w
    # Most static pixels agree to float precision; the rest straddle an edge or are occluded in frame j.
    assert np.median(rel[seen]) < 1e-4
    assert np.mean(rel[seen] < 1e-3) > 0.8


def test_dynamic_mask_covers_the_moving_objects(cache):
    frames = 3
    gt = load_scene("moving_objects", num_frames=frames, size=SIZE, samples=1, cache_dir=cache)
    layout = LAYOUTS["moving_objects"](frames)
    box = next(b for b in layout.boxes if b.moving)
    sphere = next(s for s in layout.spheres if s.moving)
    for i in range(frames):
        assert gt.dynamic[i].any()
        origin, dirs = camera_rays(gt.K[i], gt.camera_to_world[i], SIZE)
        box_t = hit_box(origin, dirs, box.positions[i], box.size)
        on_box = interior(gt.depth[i]) & (np.abs(gt.depth[i] - box_t) < 1e-3 * box_t)
        assert on_box.sum() > 10 and gt.dynamic[i][on_box].all()
        # Every dynamic pixel sees one of the two moving objects (the sphere's mesh is a bit inside the sphere).
        near_sphere = hit_sphere(origin, dirs, sphere.positions[i], sphere.radius * 1.02) < np.inf
        near_box = hit_box(origin, dirs, box.positions[i], np.asarray(box.size) * 1.02) < np.inf
        assert not (gt.dynamic[i] & ~near_sphere & ~near_box).any()


def test_every_named_scene_renders_with_its_character(cache):
    scenes = {name: load_scene(name, num_frames=2, size=(24, 32), samples=1, cache_dir=cache) for name in SCENE_NAMES}
    for gt in scenes.values():
        assert gt.depth.dtype == np.float32 and gt.K.shape == (2, 3, 3) and gt.camera_to_world.shape == (2, 4, 4)
        assert np.all(gt.depth[np.isfinite(gt.depth)] > 0)
    assert np.isinf(scenes["street"].depth).mean() > 0.02  # open sky
    street = scenes["street"].depth[np.isfinite(scenes["street"].depth)]
    assert street.max() / street.min() > 20  # a large depth range
    assert scenes["zoom"].K[1, 0, 0] > 2 * scenes["zoom"].K[0, 0, 0]  # a 2-frame zoom goes from 22 to 60 mm
    assert scenes["moving_objects"].dynamic.any() and not scenes["static"].dynamic.any()
    rot = scenes["rotation"].camera_to_world
    assert np.linalg.norm(rot[1, :3, 3] - rot[0, :3, 3]) < 0.05  # rotation-dominant: 2 cm


def test_unknown_scene_is_refused_with_the_choices():
    with pytest.raises(InputError, match="use one of: static"):
        load_scene("nope")
