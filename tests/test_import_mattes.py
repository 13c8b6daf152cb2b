"""The motion matte in Blender (bpy 5.0.1 headless): the bundle's `moving` flags become a point attribute and the
points modifier's Static Only switch hides them; bundles written before the mattes still import, all static."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
from blender_addon.importer import import_bundle  # noqa: E402
from blender_addon.importer.points import MODIFIER, MOVING_ATTRIBUTE, set_modifier_input  # noqa: E402
from engine.formats.bundle import read_bundle, write_bundle  # noqa: E402
from engine.formats.ply import read_ply, write_ply  # noqa: E402
from tests.blender_points import shown_points  # noqa: E402
from tests.synthetic_bundle import BALL_RADIUS, add_moving_ball, ball_centre, synthetic_reconstruction  # noqa: E402

NAME = "synthetic-shot"
FRAMES = 16


@pytest.fixture(scope="module")
def ball_bundle(tmp_path_factory):
    """(bundle path, per-frame bool arrays: which of each frame's points lie on the moving ball)."""
    recon = synthetic_reconstruction(num_frames=FRAMES)
    add_moving_ball(recon)
    path = write_bundle(recon, tmp_path_factory.mktemp("mattes") / "bundle")
    on_ball = []
    for f, s in zip(read_bundle(path).frames, np.linspace(0, 1, FRAMES)):
        pts = read_ply(f.points_path)
        xyz = np.stack([pts["x"], pts["y"], pts["z"]], axis=1)
        on_ball.append(np.linalg.norm(xyz - ball_centre(s), axis=1) < BALL_RADIUS + 1e-3)
    return path, on_ball


@pytest.fixture
def empty_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def _moving_attribute(obj) -> np.ndarray:
    mesh = obj.data
    moving = np.empty(len(mesh.vertices), bool)
    mesh.attributes[MOVING_ATTRIBUTE].data.foreach_get("value", moving)
    return moving




def test_moving_points_are_marked_and_static_only_hides_them(empty_scene, ball_bundle):
    path, on_ball = ball_bundle
    import_bundle(bpy.context, path)
    obj = bpy.data.objects[f"{NAME} Points"]
    moving = _moving_attribute(obj)
    truth = np.concatenate(on_ball)
    print(f"ball points {truth.sum()} of {len(truth)}, marked moving {moving.sum()}, "
          f"on the ball {(moving & truth).sum()}")
    assert truth.sum() > 100
    assert (moving & truth).sum() >= 0.9 * truth.sum() and moving.sum() <= 1.02 * truth.sum()

    counts = np.cumsum([0] + [len(b) for b in on_ball])
    for i in (3, 8, 12):  # frames where the ball is in view
        frame_moving = moving[counts[i]:counts[i + 1]]
        assert frame_moving.sum() > 10
        assert shown_points(empty_scene, obj, 1 + i) == len(frame_moving)
        set_modifier_input(obj.modifiers[MODIFIER], "Static Only", True)
        assert shown_points(empty_scene, obj, 1 + i) == len(frame_moving) - frame_moving.sum()
        set_modifier_input(obj.modifiers[MODIFIER], "Static Only", False)


def test_bundles_without_moving_flags_import_as_static(empty_scene, ball_bundle, tmp_path):
    """A bundle written before the motion mattes: its point clouds lack the `moving` property."""
    import shutil

    path, on_ball = ball_bundle
    old = shutil.copytree(path, tmp_path / "old")
    for f in read_bundle(old).frames:
        pts = read_ply(f.points_path)
        write_ply(f.points_path, np.stack([pts["x"], pts["y"], pts["z"]], axis=1),
                  np.stack([pts["red"], pts["green"], pts["blue"]], axis=1), pts["confidence"])
        assert b"moving" not in f.points_path.read_bytes()[:400]
    import_bundle(bpy.context, old)
    obj = bpy.data.objects[f"{NAME} Points"]
    assert len(obj.data.vertices) == sum(len(b) for b in on_ball)
    assert not _moving_attribute(obj).any()
    set_modifier_input(obj.modifiers[MODIFIER], "Static Only", True)
    assert shown_points(empty_scene, obj, 1 + 8) == len(on_ball[8])
