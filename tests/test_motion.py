"""Cameras for a model without rays: optical-flow matches, relative motions, and the whole alignment
on GeometryCrafter-like (camera-frame point maps) and Geo4D-like predictions against ground truth."""

import cv2
import numpy as np
import pytest

from engine.alignment import AlignOptions, align
from engine.alignment.cameras import focal_from_camera_points
from engine.alignment.correspondences import FlowMatcher
from engine.alignment.geometry import axis_angle_to_rotation, rotation_angle_deg, sample_pixels
from engine.alignment.motion import SlotMatches, relative_motions
from engine.bench.align import input_abs_rel
from engine.errors import InputError
from engine.synthetic.metrics import evaluate
from engine.synthetic.procedural import make_scene
from engine.synthetic.simulate import Corruption, simulate_camera_windows, simulate_windows

FOCAL = 60.0


def _pair(moving_fraction, seed=0):
    """Points of camera a, the known motion to b, b's view of them: a fraction on an independently
    moving object (displaced by 0.4 m in b)."""
    rng = np.random.default_rng(seed)
    _, _, pixels = sample_pixels(48, 64, 400)
    depth = rng.uniform(3.0, 9.0, len(pixels))
    x_a = np.concatenate([pixels / FOCAL, np.ones((len(pixels), 1))], axis=1) * depth[:, None]
    rotation = axis_angle_to_rotation(np.array([0.02, -0.05, 0.01]))
    translation = np.array([0.3, -0.05, 0.1])
    x_b = x_a @ rotation.T + translation
    moving = rng.uniform(size=len(pixels)) < moving_fraction
    x_b[moving] += np.array([0.4, 0.0, 0.2])
    matches = SlotMatches(a=np.array([0]), b=np.array([1]), points_a=x_a[None], points_b=x_b[None],
                          pixels_b=(FOCAL * x_b[:, :2] / x_b[:, 2:])[None], weight=np.ones((1, len(pixels))))
    return matches, rotation, translation, moving


def test_relative_motion_is_exact_and_ignores_a_moving_object():
    matches, rotation, translation, _ = _pair(0.0)
    motion = relative_motions(matches, np.array([FOCAL]))
    np.testing.assert_allclose(motion.rotation[0], rotation, atol=1e-8)
    np.testing.assert_allclose(motion.translation[0], translation, atol=1e-7)

    matches, rotation, translation, moving = _pair(0.25)
    robust = relative_motions(matches, np.array([FOCAL]))
    assert rotation_angle_deg(robust.rotation[0].T @ rotation) < 1e-4
    np.testing.assert_allclose(robust.translation[0], translation, atol=1e-5)
    assert robust.inlier[0, moving].max() < 0.01 < robust.inlier[0, ~moving].min()
    plain = relative_motions(matches, np.array([FOCAL]), robust=False)
    assert np.linalg.norm(plain.translation[0] - translation) > 0.02  # what the robust weights are for


@pytest.mark.parametrize("block", [4, 12])  # 160 x 224 frames, and 480 x 672 ones the flow sees shrunk
def test_flow_matches_follow_a_known_shift_and_drop_what_leaves_the_frame(block):
    rng = np.random.default_rng(1)
    texture = np.kron(rng.integers(0, 255, (40, 56)), np.ones((block, block))).astype(np.float32)
    texture = cv2.GaussianBlur(texture, (0, 0), 1.5 * block / 4)
    h, w = texture.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = 3.5 * block / 4, -2.25 * block / 4
    shifted = cv2.remap(texture, x - dx, y - dy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    rgb = np.stack([texture, shifted])[..., None].repeat(3, axis=3).clip(0, 255).astype(np.uint8)
    v, u, _ = sample_pixels(h, w, 600)
    target, ok = FlowMatcher(rgb, v, u).match(0, 1)
    margin = 3 * block
    inner = (u > margin) & (u < w - margin) & (v > margin) & (v < h - margin)
    assert ok[inner].mean() > 0.95
    error = np.hypot(target[:, 0] - (u + dx), target[:, 1] - (v + dy))
    assert np.median(error[inner & ok]) < 0.1 * block / 4
    assert not ok[u + dx > w - 1].any()  # their match lies outside the image


def test_focal_from_camera_points_is_exact_and_robust():
    _, _, pixels = sample_pixels(40, 60, 300)
    rng = np.random.default_rng(2)
    points = np.concatenate([pixels / 55.0, np.ones((len(pixels), 1))], axis=1) * rng.uniform(1, 5, (len(pixels), 1))
    bad = points.copy()
    bad[::10, :2] *= 1.5  # a tenth of the points off their rays
    weights = np.ones((2, len(pixels)))
    focal = focal_from_camera_points(np.stack([points, bad]), weights, pixels)
    plain = focal_from_camera_points(bad[None], weights[:1], pixels, steps=1)[0]  # no reweighting
    assert abs(focal[0] - 55.0) < 1e-9
    assert abs(focal[1] - 55.0) < 0.3 < 0.5 * abs(plain - 55.0)


SIZE = (80, 128)


@pytest.mark.parametrize("scene", ["static", "moving_objects"])
def test_noise_free_camera_frame_predictions(scene):
    gt = make_scene(scene, 28, SIZE)
    windows = simulate_camera_windows(gt, window_length=16, overlap=4, corruption=Corruption.none())
    m = evaluate(align(windows), gt)
    assert m["ate_percent"] < 0.6  # optical flow's own error (a few tenths of a pixel) is what is left
    assert m["abs_rel"] < 1e-3 and m["focal_error"] < 1e-4 and m["depth_coverage"] > 0.99


@pytest.mark.parametrize("scene, path_target", [("static", 1.0), ("moving_objects", 2.0)])
def test_realistic_camera_frame_predictions_meet_the_targets(scene, path_target):
    gt = make_scene(scene, 32, SIZE)
    windows = simulate_camera_windows(gt, window_length=16, overlap=4, corruption=Corruption.realistic(), seed=1)
    m = evaluate(align(windows), gt)
    assert m["ate_percent"] <= path_target
    assert m["abs_rel"] < input_abs_rel(windows, gt)
    assert m["focal_error"] <= 0.02


def test_the_same_solver_on_geo4d_predictions_without_rays_agrees_with_the_rays():
    gt = make_scene("static", 24, SIZE)
    windows = simulate_windows(gt, stride=8, corruption=Corruption.realistic(), seed=1)
    with_rays = evaluate(align(windows), gt)
    by_motion = evaluate(align(windows, AlignOptions(use_rays=False, motion_cameras=True)), gt)
    assert by_motion["ate_percent"] < max(1.0, 1.5 * with_rays["ate_percent"])
    assert by_motion["abs_rel"] < 1.2 * with_rays["abs_rel"]


@pytest.mark.parametrize("first, named", [(None, 12), (100, 112)])
def test_camera_frame_maps_need_enough_valid_points(first, named):
    """The error names the clip's frame counted from 1, as Blender plays it: the windows' frame 11 (window 1
    starts at 8) is the clip's 12th, or its 112th when the windows begin at the clip's frame 100 (0-based)."""
    gt = make_scene("static", 20, SIZE)
    windows = simulate_camera_windows(gt, window_length=12, overlap=4)
    windows.pointmap_conf[1, 3, :, :] = 0.0
    windows.pointmap_conf[1, 3, 0, :5] = 1.0  # five valid pixels: too few for a focal length
    frames = None if first is None else np.arange(first, first + 20)
    with pytest.raises(InputError, match=rf"^frame {named} of the clip \(counting from 1\) has too few valid "
                                         "points in window 1 "):
        align(windows, frames=frames)
