"""Resizing a window's maps to the bundle's map size."""

import numpy as np

from engine.windows.resize import resize_window_maps


def _maps(t=2, h=8, w=12):
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    # A plane z = 2 seen by a pinhole with f = 10: linear in u and v, so bilinear resizing is exact.
    x, y = (u + 0.5 - w / 2) / 10 * 2, (v + 0.5 - h / 2) / 10 * 2
    pointmap = np.broadcast_to(np.stack([x, y, np.full_like(x, 2.0)], -1), (t, h, w, 3)).copy()
    dirs = pointmap / np.linalg.norm(pointmap, axis=-1, keepdims=True)
    conf = np.ones((t, h, w), np.float32)
    conf[0, 3, 5] = 0.0
    return {"pointmap": pointmap, "pointmap_conf": conf, "disparity": 1 / pointmap[..., 2],
            "ray_dirs": dirs, "ray_moments": np.zeros_like(dirs)}


def test_resize_keeps_geometry_and_spreads_invalid_pixels():
    out = resize_window_maps(_maps(), (4, 7))
    assert out["pointmap"].shape == (2, 4, 7, 3) and out["pointmap_conf"].shape == (2, 4, 7)
    # Pixel centres of the new grid, in the old grid's units: same plane, same pinhole.
    v, u = np.mgrid[0:4, 0:7].astype(np.float32)
    u_old, v_old = (u + 0.5) * 12 / 7, (v + 0.5) * 8 / 4
    inside = (u_old > 0.5) & (u_old < 11.5) & (v_old > 0.5) & (v_old < 7.5)  # away from the clamped border
    np.testing.assert_allclose(out["pointmap"][1, ..., 0][inside], ((u_old - 6) / 5)[inside], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out["ray_dirs"], axis=-1), 1.0, atol=1e-6)
    assert (out["pointmap_conf"][1] == 1).all()
    invalid = out["pointmap_conf"][0] == 0
    assert 1 <= invalid.sum() <= 4 and invalid[1, 3]  # new (1, 3) samples old u 5.5, v 2.5: includes (3, 5)


def test_same_size_is_untouched():
    maps = _maps()
    assert resize_window_maps(maps, (8, 12)) is maps
