"""Depth at plate resolution (engine/export/upsample.py) against ground truth rendered at plate resolution:
Abs Rel over every pixel and near depth discontinuities, against nearest-neighbour and bilinear upscaling."""

import cv2
import numpy as np
import pytest

from engine.export.upsample import upsample_depth
from engine.synthetic.procedural import make_scene

MAP, PLATE = (72, 128), (144, 256)


def _edges(gt: np.ndarray) -> np.ndarray:
    """bool[H, W]: within 2 pixels of a depth discontinuity (log depth jumps by more than 0.2; the sky counts)."""
    logd = np.where(np.isfinite(gt), np.log(np.where(np.isfinite(gt), gt, 1.0)), 10.0).astype(np.float32)
    jump = (np.abs(cv2.Sobel(logd, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(logd, cv2.CV_32F, 0, 1))) > 0.2
    return cv2.dilate(jump.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


def _methods(depth: np.ndarray, plate: np.ndarray) -> dict[str, np.ndarray]:
    h, w = plate.shape[:2]
    valid = cv2.resize((depth > 0).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 1 - 1e-6
    return {
        "nearest": cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST),
        "bilinear": np.where(valid, cv2.resize(depth, (w, h), interpolation=cv2.INTER_LINEAR), 0.0),
        "guided": upsample_depth(depth, np.ones_like(depth), plate)[0],
    }


@pytest.mark.parametrize("scene", ["static", "moving_objects", "street"])
def test_guided_plate_depth_beats_nearest_neighbour(scene):
    low, high = make_scene(scene, 3, MAP, seed=0), make_scene(scene, 3, PLATE, seed=0)
    errors = {}
    for i in range(3):
        depth = np.where(np.isfinite(low.depth[i]), low.depth[i], 0.0).astype(np.float32)
        gt = high.depth[i]
        ups = _methods(depth, high.rgb[i])
        common = np.isfinite(gt) & np.all([u > 0 for u in ups.values()], axis=0)  # the same pixels for all
        edge = common & _edges(gt)
        sky = ~np.isfinite(gt)
        for name, up in ups.items():
            rel = np.abs(up - np.where(np.isfinite(gt), gt, 1.0)) / np.where(np.isfinite(gt), gt, 1.0)
            errors.setdefault(name, []).append((rel[common].mean(), rel[edge].mean(), (up[sky] > 0).sum(), sky.sum()))
    table = {name: (*np.mean(v, axis=0)[:2], np.sum(v, axis=0)[2] / max(np.sum(v, axis=0)[3], 1))
             for name, v in errors.items()}
    for name, (all_rel, edge_rel, sky_depth) in table.items():
        print(f"{scene} {MAP} -> {PLATE} {name:8s}: Abs Rel {all_rel:.4f}, near edges {edge_rel:.4f}, "
              f"sky pixels given depth {sky_depth:.4f}")
    assert table["guided"][0] < table["nearest"][0] and table["guided"][1] < 0.8 * table["nearest"][1]
    assert table["guided"][2] <= table["nearest"][2] + 0.005  # no depth smeared into the sky


def test_a_plane_is_upsampled_exactly():
    """Inverse depth is affine on a plane: the guided upsampling reproduces a tilted plane's depth."""
    def plane(h, w):
        v, u = np.mgrid[0:h, 0:w]
        return (1.0 / (0.2 + 0.3 * (u + 0.5) / w + 0.1 * (v + 0.5) / h)).astype(np.float32)
    plate = np.full((*PLATE, 3), 128, np.uint8)
    depth, conf = upsample_depth(plane(*MAP), np.full(MAP, 0.5, np.float32), plate)
    inner = (slice(2, -2), slice(2, -2))  # the outermost pixels extrapolate (clamped at the border)
    np.testing.assert_allclose(depth[inner], plane(*PLATE)[inner], rtol=1e-5)
    assert np.all(conf == 0.5)


def test_maps_at_the_plate_size_stay_as_they_are():
    low = make_scene("moving_objects", 1, MAP, seed=0)
    depth = np.where(np.isfinite(low.depth[0]), low.depth[0], 0).astype(np.float32)
    out, conf = upsample_depth(depth, np.ones_like(depth), low.rgb[0])
    np.testing.assert_array_equal(out, depth)
    np.testing.assert_array_equal(conf, (depth > 0).astype(np.float32))
