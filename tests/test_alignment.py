"""The alignment against ground truth: procedural scenes, simulated predictions, MonST3R metrics."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from engine.alignment import AlignOptions, align, alignment_notes, down_weighted_note, tripod_note
from engine.alignment.baseline import align_baseline
from engine.alignment.poses import SMOOTHING_GRID, smooth_trajectory, track_smoothing, tripod_track
from engine.synthetic.metrics import evaluate
from engine.synthetic.procedural import make_scene
from engine.synthetic.simulate import Corruption, simulate_windows

SIZE = (48, 80)


def _run(scene, frames, stride=4, corruption=None, seed=0, **options):
    gt = make_scene(scene, frames, SIZE, seed=seed)
    windows = simulate_windows(gt, stride=stride, corruption=corruption or Corruption.none(), seed=seed)
    return gt, windows, align(windows, AlignOptions(**options))


@pytest.mark.parametrize("scene, frames, stride, options", [
    ("static", 24, 4, {}),
    ("zoom", 24, 4, {}),  # per-frame focal detected (auto)
    ("street", 24, 3, {}),
    ("forward", 24, 4, {}),  # 120 m forward down a road, sky, depths to 300 m
    ("rotation", 24, 4, {}),  # its 6 cm of travel about a pivot (a tripod shot, auto: below)
    ("moving_objects", 20, 7, {}),
    ("static", 10, 4, {}),  # shorter than a window: one padded window
    ("static", 24, 1, {}),
    ("static", 24, 4, {"use_rays": False}),  # cameras from the point maps alone
])
def test_noise_free_predictions_are_reconstructed_almost_exactly(scene, frames, stride, options):
    gt, _, recon = _run(scene, frames, stride, **options)
    m = evaluate(recon, gt)
    assert m["ate_percent"] < 0.1
    assert m["abs_rel"] < 0.005
    assert m["focal_error"] < 0.005
    assert m["depth_coverage"] > 0.99
    np.testing.assert_allclose(recon.camera_to_world[0], np.eye(4), atol=1e-9)  # world = first camera


def test_the_forward_dolly_goes_far_under_a_sky():
    gt = make_scene("forward", 8, SIZE)
    depth = gt.depth[np.isfinite(gt.depth)]
    assert np.mean(~np.isfinite(gt.depth)) > 0.02 and depth.max() > 100.0 and np.percentile(depth, 99) > 50.0
    travel = gt.camera_to_world[-1, :3, 3] - gt.camera_to_world[0, :3, 3]
    assert travel[2] > 100.0 and abs(travel[0]) < 1.0  # forward along the view


def test_sky_is_left_empty():
    gt, _, recon = _run("street", 16)
    sky = ~np.isfinite(gt.depth)
    assert sky.mean() > 0.02
    assert np.all(recon.depth[sky] == 0) and np.all(recon.confidence[sky] == 0)
    assert np.all(recon.depth[~sky] > 0)


def test_zoom_needs_per_frame_focal():
    gt, windows, per_frame = _run("zoom", 20, per_frame_focal="on")
    shared = align(windows, AlignOptions(per_frame_focal="off"))
    assert evaluate(per_frame, gt)["focal_error"] < 0.005
    assert evaluate(shared, gt)["focal_error"] > 0.05  # one focal cannot follow a 1.8x zoom


@pytest.mark.parametrize("scene, zoom", [("zoom", True), ("static", False), ("street", False)])
def test_a_zoom_is_detected_from_the_windows_focal_estimates(scene, zoom):
    gt, windows, auto = _run(scene, 32, corruption=Corruption.realistic(), seed=1)
    chosen = align(windows, AlignOptions(per_frame_focal="on" if zoom else "off"))
    np.testing.assert_array_equal(auto.K, chosen.K)  # auto made the right choice: the same solve
    np.testing.assert_array_equal(auto.camera_to_world, chosen.camera_to_world)
    # On 32 small frames the per-window focal bias leaves a few % (the bench's 64 frames: under 2 %).
    assert evaluate(auto, gt)["focal_error"] < 0.04
    if zoom:
        assert evaluate(align(windows, AlignOptions(per_frame_focal="off")), gt)["focal_error"] > 0.1


def test_a_zoom_keeps_one_focal_bias_for_the_shot_not_one_per_window():
    # Each window's focal read off by its own few %: per frame, the windows are first brought to their consensus,
    # so the frames of a window further off do not take its bias (as one fixed focal takes the slots' median).
    gt, windows, recon = _run("zoom", 40, corruption=Corruption(focal_bias=0.05), seed=3)
    assert windows.num_windows == 7
    ratio = recon.K[:, 0, 0] / gt.K[:, 0, 0]
    assert ratio.max() / ratio.min() - 1 < 0.002  # one bias for the whole shot (each window's own: 7 % apart)


def test_window_focal_bias_from_shared_frames():
    # Three windows over 12 frames, each frame's true focal times its window's factor. Sorted by bias the slots
    # run 6 of window 1, 6 of window 0, 4 of window 2: the median slot is window 0's, so the biases come out
    # against it. Windows sharing no frame are not related.
    from engine.alignment.align import window_focal_bias

    frames = [np.arange(0, 6), np.arange(4, 10), np.arange(8, 12)]
    truth = 500.0 * 1.05 ** np.arange(12)  # a zoom
    factor = [1.02, 1.0, 1.10]
    window = np.concatenate([np.full(len(f), g) for g, f in enumerate(frames)])
    frame = np.concatenate(frames)
    focal = truth[frame] * np.array(factor)[window]
    np.testing.assert_allclose(window_focal_bias(focal, window, frame, 12), np.log(np.array(factor) / factor[0]),
                               atol=1e-12)
    apart = np.concatenate([np.arange(0, 4), np.arange(6, 10)])
    np.testing.assert_array_equal(window_focal_bias(truth[apart] * 1.1, np.repeat([0, 1], 4), apart, 12), 0.0)


@pytest.mark.parametrize("scene, tripod", [("rotation", True), ("static", False), ("zoom", False)])
def test_a_tripod_shot_turns_about_one_pivot(scene, tripod):
    """The rotation shot turns about a pivot with the lens 5 cm in front of it: on a tripod its centres follow
    that arc; a dolly (static) and a zoom with a little dolly are no tripod shots, and auto leaves them free."""
    gt, windows, default = _run(scene, 32, corruption=Corruption.realistic(), seed=1)
    free = align(windows, AlignOptions(nodal_pan="off"))
    nodal = align(windows, AlignOptions(nodal_pan="on"))
    auto = align(windows, AlignOptions(nodal_pan="auto"))
    np.testing.assert_array_equal(default.camera_to_world, auto.camera_to_world)  # auto is the default
    np.testing.assert_array_equal(nodal.camera_to_world[:, :3, :3], free.camera_to_world[:, :3, :3])
    np.testing.assert_array_equal(nodal.depth, free.depth)  # only the centres change
    np.testing.assert_array_equal(auto.camera_to_world, (nodal if tripod else free).camera_to_world)
    assert [r.metadata["alignment"]["tripod_shot"] for r in (free, nodal, auto)] == [False, True, tripod]
    assert (tripod_note(auto) is not None) == tripod and tripod_note(nodal) is None  # told when it was not asked
    assert (("info", tripod_note(auto)) in alignment_notes(windows, auto, None)) == tripod
    m_free, m_nodal = evaluate(free, gt), evaluate(nodal, gt)
    if tripod:
        assert m_nodal["ate_percent"] < 0.3 * m_free["ate_percent"]
    else:  # held near one place, the dolly's centres are far off
        assert m_nodal["centre_error"] > 5 * m_free["centre_error"]


def test_a_tripod_track_is_a_pivot_and_a_lever_arm():
    """c_i = p + R_i o fitted to noisy centres: exact input kept, noise removed, the arm held to its bound, the
    arm along the pan's axis (which moves nothing) not fitted, and a track without rotation at its mean."""
    rng = np.random.default_rng(0)
    n = 40
    rotation = Rotation.from_euler("yx", np.stack([np.linspace(-0.6, 0.6, n), np.full(n, 0.1)], axis=1)).as_matrix()
    truth = np.array([0.3, -0.2, 1.0]) + rotation @ np.array([0.0, 0.02, 0.05])
    ones = np.ones(n)
    np.testing.assert_allclose(tripod_track(rotation, truth, ones, 0.2), truth, atol=1e-12)
    noisy = truth + 0.002 * rng.standard_normal((n, 3))
    rms = lambda x: np.sqrt(np.mean(x**2))  # noqa: E731
    assert rms(tripod_track(rotation, noisy, ones, 0.2) - truth) < 0.4 * rms(noisy - truth)
    bounded = tripod_track(rotation, truth, ones, 0.03)  # the true arm is 5.4 cm long
    turn = rotation - rotation.mean(axis=0)
    arm = np.linalg.lstsq(turn.reshape(-1, 3), (bounded - bounded.mean(axis=0)).reshape(-1), rcond=None)[0]
    assert np.linalg.norm(arm) == pytest.approx(0.03, rel=1e-6)
    assert abs(arm[1]) < 1e-9  # the pan turns about the camera's y axis: its 2 cm there are not fitted
    still = np.tile(np.eye(3), (n, 1, 1))
    dolly = np.linspace(0.0, 1.0, n)[:, None] * np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(tripod_track(still, dolly, ones, 0.1), np.tile(dolly.mean(axis=0), (n, 1)))


@pytest.mark.parametrize("scene", ["static", "street", "forward"])
def test_realistic_corruptions_beat_the_chaining_baseline(scene):
    gt, windows, recon = _run(scene, 32, corruption=Corruption.realistic(), seed=3)
    ours = evaluate(recon, gt)
    base = evaluate(align_baseline(windows), gt)
    assert ours["ate"] < base["ate"]
    assert ours["abs_rel"] < base["abs_rel"]
    assert ours["abs_rel"] < 0.05


def test_a_disagreeing_window_is_down_weighted():
    gt = make_scene("static", 32, SIZE)
    windows = simulate_windows(gt, stride=4, corruption=Corruption.none())
    bad = 2
    # Window 2 claims a bent world: depth scaled by up to 1.6x across the image, confidently.
    bend = 1.0 + 0.6 * np.linspace(0.0, 1.0, SIZE[1])[None, None, :, None]
    windows.pointmap[bad] *= bend.astype(np.float32)
    robust = align(windows)
    plain = align(windows, AlignOptions(robust=False))
    assert robust.metadata["alignment"]["down_weighted_windows"] == [bad]
    robust.frames = robust.frames + 100  # a clip range from index 100: the note counts the clip's frames from 1
    assert down_weighted_note(windows, robust) == ("1 of 5 windows disagreed with the others and were "
                                                   "down-weighted (frames 109-124 of the clip, counting "
                                                   "from 1); check the camera there")
    assert down_weighted_note(windows, plain) is None
    # What the callers log: the warning first, then the solve error; no tripod shot here.
    assert [(level, note[:11]) for level, note in alignment_notes(windows, robust, None)] == [
        ("warning", "1 of 5 wind"), ("info", "solve error")]
    m_robust, m_plain = evaluate(robust, gt), evaluate(plain, gt)
    assert m_robust["abs_rel"] < 0.002 and m_robust["abs_rel"] < m_plain["abs_rel"]
    assert m_robust["ate_percent"] < 0.1 < m_plain["ate_percent"]


def test_disjoint_windows_are_tied_by_adjacent_frames():
    gt, _, recon = _run("static", 40, stride=16)  # windows 0-15, 16-31, 24-39: the first two share nothing
    m = evaluate(recon, gt)
    assert m["ate_percent"] < 2.0
    assert m["abs_rel"] < 0.01


def test_progress_is_reported_in_order():
    gt = make_scene("static", 12, SIZE)
    windows = simulate_windows(gt, stride=4)
    seen = []
    align(windows, progress=lambda stage, fraction: seen.append((stage, fraction)))
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert {"cameras", "poses", "depth"} <= {s for s, _ in seen}


def test_nonsense_predictions_still_give_finite_cameras_and_depth():
    rng = np.random.default_rng(0)
    gt = make_scene("static", 20, SIZE)
    windows = simulate_windows(gt, stride=4)
    for name in ("pointmap", "ray_dirs", "ray_moments"):  # what an untrained model might say
        getattr(windows, name)[:] = rng.normal(size=getattr(windows, name).shape)
    for options in (AlignOptions(), AlignOptions(use_rays=False)):
        recon = align(windows, options)
        assert np.all(np.isfinite(recon.camera_to_world)) and np.all(np.isfinite(recon.K))
        assert np.all(np.isfinite(recon.depth)) and np.all(recon.depth >= 0)


def test_the_track_smoothing_is_the_most_likely_strength():
    """The banded likelihood picks what the eigen-decomposition of the same model picks, and the strength it
    picks removes white noise from a smooth track but keeps a shake the track repeats."""
    rng = np.random.default_rng(0)
    n = 64
    t = np.arange(n)
    truth = np.stack([np.sin(t / 20), 0.01 * t, np.cos(t / 15)], axis=1)
    noisy = truth + 0.02 * rng.standard_normal((n, 3))
    second = np.diff(np.eye(n), 2, axis=0)
    mu, u = np.linalg.eigh(second.T @ second)
    curved, mu = (u.T @ noisy)[mu > 1e-9 * mu.max()], mu[mu > 1e-9 * mu.max()]  # what a line does not explain
    # each curved component ~ N(0, sigma^2 (1 + 1 / (lam mu))); -2 log likelihood with sigma^2 profiled out
    cost = [curved.size * np.log(np.sum(curved**2 / (1 + 1 / (lam * mu))[:, None]))
            + 3 * np.sum(np.log(1 + 1 / (lam * mu))) for lam in SMOOTHING_GRID]
    assert track_smoothing(noisy) == SMOOTHING_GRID[int(np.argmin(cost))] > 1.0
    identity = np.tile(np.eye(3), (n, 1, 1))
    _, smoothed = smooth_trajectory(identity, noisy, np.full(n, np.nan), np.full(n, np.nan), 30.0, track_scale=1.0)
    assert np.sqrt(np.mean((smoothed - truth) ** 2)) < 0.5 * np.sqrt(np.mean((noisy - truth) ** 2))
    shaking = truth + 0.05 * np.sin(2 * np.pi * t / 6)[:, None]
    _, kept = smooth_trajectory(identity, shaking, np.full(n, np.nan), np.full(n, np.nan), 30.0, track_scale=1.0)
    assert np.abs(kept - shaking).max() < 1e-3
    assert track_smoothing(np.stack([t, 2.0 * t], axis=1)) == 0.0  # a straight line: nothing to tell apart
