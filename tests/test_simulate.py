"""The ground-truth harness itself: procedural scenes, the prediction simulator and the metrics."""

import numpy as np
import pytest

from engine.alignment.geometry import umeyama
from engine.formats.bundle import Reconstruction
from engine.synthetic.metrics import evaluate
from engine.synthetic.procedural import GROUND_Y, PROCEDURAL_SCENES, make_scene
from engine.synthetic.simulate import Corruption, simulate_camera_windows, simulate_windows

SIZE = (32, 48)


def _world_points(gt, i):
    h, w = gt.image_size
    v, u = np.mgrid[0:h, 0:w]
    pix = np.stack([u + 0.5, v + 0.5, np.ones((h, w))], axis=-1) @ np.linalg.inv(gt.K[i]).T
    cam = pix * np.nan_to_num(gt.depth[i], posinf=0.0)[..., None]  # sky: the camera centre, never used
    return cam @ gt.camera_to_world[i, :3, :3].T + gt.camera_to_world[i, :3, 3]


@pytest.mark.parametrize("name", PROCEDURAL_SCENES)
def test_scene_depth_is_consistent_with_its_cameras(name):
    gt = make_scene(name, 30, SIZE)
    assert gt.depth.shape == (30, *SIZE) and gt.rgb.dtype == np.uint8
    assert np.isfinite(gt.depth).mean() > 0.5
    # A static pixel of frame 0 projects into frame 1 where frame 1's depth agrees with it.
    points = _world_points(gt, 0)
    ok = np.isfinite(gt.depth[0]) & ~gt.dynamic[0]
    w2c = np.linalg.inv(gt.camera_to_world[1])
    cam = points[ok] @ w2c[:3, :3].T + w2c[:3, 3]
    pix = cam @ gt.K[1].T
    u, v = pix[:, 0] / pix[:, 2], pix[:, 1] / pix[:, 2]
    inside = (u > 1) & (u < SIZE[1] - 1) & (v > 1) & (v < SIZE[0] - 1) & (cam[:, 2] > 0)
    z_seen = gt.depth[1][v[inside].astype(int), u[inside].astype(int)]
    close = np.abs(z_seen - cam[inside, 2]) < 0.05 * cam[inside, 2]
    assert inside.sum() > 50 and close.mean() > 0.75  # the rest: occlusion and pixel rounding at edges
    # Exact: back-projected pixels of the ground lie on the ground plane (y = 1.5), to float precision.
    on_ground = np.abs(points[..., 1] - GROUND_Y) < 1e-5 * gt.depth[0]
    assert on_ground.mean() > 0.15


def test_scene_specifics():
    assert make_scene("moving_objects", 4, SIZE).dynamic.any()
    zoom = make_scene("zoom", 8, SIZE)
    assert zoom.K[-1, 0, 0] / zoom.K[0, 0, 0] == pytest.approx(1.8)
    street = make_scene("street", 4, SIZE)
    finite = street.depth[np.isfinite(street.depth)]
    assert (~np.isfinite(street.depth)).any() and finite.max() / finite.min() > 20
    rot = make_scene("rotation", 8, SIZE)
    travel = np.linalg.norm(rot.camera_to_world[-1, :3, 3] - rot.camera_to_world[0, :3, 3])
    yaw = np.degrees(np.arccos(rot.camera_to_world[0, :3, 2] @ rot.camera_to_world[-1, :3, 2]))
    assert travel < 0.1 and yaw > 60
    np.testing.assert_array_equal(make_scene("static", 3, SIZE, seed=4).rgb, make_scene("static", 3, SIZE, seed=4).rgb)
    # The handheld camera shakes: its velocity changes by a good part of a step from frame to frame (the dolly's by
    # under 1 %), and its aim turns back and forth.
    for name, shakes in (("handheld", True), ("static", False)):
        c2w = make_scene(name, 64, SIZE).camera_to_world
        step = np.linalg.norm(np.diff(c2w[:, :3, 3], axis=0), axis=1).mean()
        change = np.sqrt(np.mean(np.sum(np.diff(c2w[:, :3, 3], 2, axis=0) ** 2, axis=1)))
        turn = np.diff(c2w[:, :3, 2], axis=0)
        assert (change / step > 0.3, np.mean(np.sum(turn[1:] * turn[:-1], axis=1) < 0) > 0.1) == (shakes, shakes)


def test_noise_free_windows_hold_exact_geometry_up_to_the_window_ambiguity():
    gt = make_scene("street", 20, SIZE)
    windows = simulate_windows(gt, stride=4, corruption=Corruption.none(), seed=2)
    windows.validate()
    g, t = 1, 5
    i = windows.window_starts[g] + t
    sky = ~np.isfinite(gt.depth[i])
    assert np.all(windows.pointmap_conf[g, t][sky] == 0) and np.all(windows.disparity[g, t][sky] == 0)
    # Point map = one similarity (rotation fixed by the window's first camera) of the true points.
    to_window = np.linalg.inv(gt.camera_to_world[windows.window_starts[g]])
    true = _world_points(gt, i)[~sky] @ to_window[:3, :3].T + to_window[:3, 3]
    pred = windows.pointmap[g, t][~sky].astype(np.float64)
    s, r, shift = umeyama(true, pred)
    np.testing.assert_allclose(r, np.eye(3), atol=1e-5)
    np.testing.assert_allclose(s * true + shift, pred, rtol=1e-4, atol=1e-3 * s)
    # Moments are o x d for the same similarity of the true camera centre.
    cam_to_window = to_window @ gt.camera_to_world[i]
    centre = s * cam_to_window[:3, 3] + shift
    np.testing.assert_allclose(np.cross(centre, windows.ray_dirs[g, t]), windows.ray_moments[g, t], atol=1e-4 * s)
    # Disparity is exactly affine in inverse depth.
    inv_z = 1.0 / gt.depth[i][~sky]
    a, b = np.polyfit(inv_z, windows.disparity[g, t][~sky], 1)
    np.testing.assert_allclose(a * inv_z + b, windows.disparity[g, t][~sky], rtol=1e-4)


def test_camera_frame_windows_hold_each_frames_points_in_its_camera_at_one_scale_per_window():
    gt = make_scene("street", 30, SIZE)
    windows = simulate_camera_windows(gt, window_length=12, overlap=4, corruption=Corruption.none(), seed=1)
    windows.validate()
    assert windows.modalities == ("pointmap",) and windows.pointmap_frame == "camera"
    assert windows.window_starts.tolist() == [0, 8, 16, 18] and windows.window_lengths.tolist() == [12] * 4
    scales = []
    for g in range(windows.num_windows):
        for t in range(12):
            i = windows.window_starts[g] + t
            sky = ~np.isfinite(gt.depth[i])
            assert np.array_equal(windows.pointmap_conf[g, t], (~sky).astype(np.float32))  # validity, 0 / 1
            world = _world_points(gt, i)[~sky]
            to_cam = np.linalg.inv(gt.camera_to_world[i])
            true = world @ to_cam[:3, :3].T + to_cam[:3, 3]
            pred = windows.pointmap[g, t][~sky].astype(np.float64)
            ratio = pred / true  # x, y and z alike: the camera's own frame, one scale, no shift
            np.testing.assert_allclose(ratio, ratio[0, 0], rtol=1e-4)
            scales.append((g, ratio[0, 0]))
    per_window = [[s for g, s in scales if g == k] for k in range(windows.num_windows)]
    assert all(np.ptp(s) < 1e-4 * s[0] for s in per_window)  # consistent within a window
    assert np.ptp([s[0] for s in per_window]) > 0.1  # drifting between windows


def test_short_clip_gives_one_padded_window():
    windows = simulate_windows(make_scene("static", 9, SIZE), stride=4)
    assert windows.window_starts.tolist() == [0] and windows.window_lengths.tolist() == [9]
    assert windows.pointmap.shape[1] == 16 and not windows.pointmap_conf[0, 9:].any()


def test_realistic_confidence_tracks_the_error():
    gt = make_scene("static", 16, SIZE)
    clean = simulate_windows(gt, stride=4, corruption=Corruption.none(), seed=5)
    noisy = simulate_windows(gt, stride=4, corruption=Corruption.realistic(), seed=5)
    ok = clean.pointmap_conf[0] > 0
    err = np.linalg.norm(noisy.pointmap[0] - clean.pointmap[0], axis=-1)[ok]
    conf = noisy.pointmap_conf[0][ok]
    low, high = conf < np.quantile(conf, 0.2), conf > np.quantile(conf, 0.8)
    assert np.median(err[low]) > 2 * np.median(err[high])


def _recon(gt, c2w=None, depth=None, k=None):
    return Reconstruction(frames=np.arange(gt.num_frames), fps=gt.fps, K=gt.K if k is None else k,
                          camera_to_world=gt.camera_to_world if c2w is None else c2w,
                          depth=np.nan_to_num(gt.depth, posinf=0.0) if depth is None else depth,
                          confidence=np.ones(gt.depth.shape, np.float32))


def test_metrics_of_the_truth_and_of_known_errors():
    gt = make_scene("static", 10, SIZE)
    perfect = evaluate(_recon(gt), gt)
    assert perfect["abs_rel"] < 1e-6 and perfect["ate"] < 1e-9 and perfect["rpe_rot_deg"] < 1e-5
    assert perfect["delta_1.25"] == 1.0 and perfect["focal_error"] == 0.0
    # A similarity of the whole trajectory and a global depth scale cost nothing.
    sim = np.eye(4)
    sim[:3, :3] = 3.0 * np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    sim[:3, 3] = [1, 2, 3]
    c2w = sim @ gt.camera_to_world
    c2w[:, :3, :3] /= 3.0
    depth = 3.0 * np.nan_to_num(gt.depth, posinf=0.0)
    moved = evaluate(_recon(gt, c2w=c2w, depth=depth), gt)
    assert moved["ate"] < 1e-9 and moved["abs_rel"] < 1e-6 and moved["rpe_rot_deg"] < 1e-5
    # One camera shifted by d: ATE about d / sqrt(N) (the Sim(3) fit spreads it a little), focal +2 %.
    shifted = gt.camera_to_world.copy()
    shifted[4, :3, 3] += [0.1, 0, 0]
    k = gt.K.copy()
    k[:, [0, 1], [0, 1]] *= 1.02
    m = evaluate(_recon(gt, c2w=shifted, k=k), gt)
    assert 0.7 * 0.1 / np.sqrt(10) < m["ate"] < 0.1 / np.sqrt(10)
    assert m["focal_error"] == pytest.approx(0.02)
    assert m["ate_percent"] == pytest.approx(100 * m["ate"] / m["trajectory_length"])
