"""Bundle import into Blender (bpy 5.0.1 headless) against a synthetic scene with known cameras."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Vector  # noqa: E402

from blender_addon.errors import InputError  # noqa: E402
from blender_addon.importer import ImportOptions, classes, import_bundle  # noqa: E402
from blender_addon.importer.depth import compositor_tree  # noqa: E402
from blender_addon.importer.points import COLOR_ATTRIBUTE, modifier_input, set_modifier_input  # noqa: E402
from blender_addon.importer.transforms import srgb_to_linear  # noqa: E402
from tests.blender_points import shown_points  # noqa: E402
from tests.synthetic_bundle import FLOOR_Y  # noqa: E402

NAME = "synthetic-shot"


@pytest.fixture
def empty_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def _camera_at(scene, camera, frame):
    scene.frame_set(frame)
    return np.array(camera.matrix_world), camera.data.lens, camera.data.shift_x, camera.data.shift_y


def _angle_deg(R):
    return np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)))


@pytest.mark.parametrize("floor_fit", [False, True])
def test_camera_trajectory_matches_ground_truth(empty_scene, bundle, floor_fit):
    path, recon = bundle
    import_bundle(bpy.context, path, ImportOptions(floor_fit=floor_fit))
    camera = empty_scene.camera
    assert camera.name == f"{NAME} Camera"
    frames = range(empty_scene.frame_start, empty_scene.frame_end + 1)
    blender = np.array([_camera_at(empty_scene, camera, f)[0] for f in frames])
    gt = recon.camera_to_world
    assert len(blender) == len(gt)

    # One similarity transform: rotation from the camera orientations, then scale and shift from positions.
    R_cv = blender[:, :3, :3] @ np.diag([1.0, -1.0, -1.0])  # Blender camera axes -> OpenCV camera axes
    u, _, vt = np.linalg.svd(np.sum(R_cv @ gt[:, :3, :3].transpose(0, 2, 1), axis=0))
    R = u @ np.diag([1, 1, np.linalg.det(u @ vt)]) @ vt
    p_gt, p_b = gt[:, :3, 3], blender[:, :3, 3]
    a, b = (p_gt - p_gt.mean(0)) @ R.T, p_b - p_b.mean(0)
    s = np.sum(a * b) / np.sum(a * a)
    error = np.linalg.norm(s * a - b, axis=1)
    length = np.sum(np.linalg.norm(np.diff(p_b, axis=0), axis=1))
    assert error.max() < 1e-3 * length
    rotation_errors = [_angle_deg(R_cv[i].T @ R @ gt[i, :3, :3]) for i in range(len(gt))]
    assert max(rotation_errors) < 0.1
    if not floor_fit:  # the first camera looks along +Y, upright
        np.testing.assert_allclose(blender[0, :3, :3], [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-6)


def test_lens_and_shift_reproduce_intrinsics(empty_scene, bundle):
    path, recon = bundle
    import_bundle(bpy.context, path)
    camera = empty_scene.camera
    w, h = empty_scene.render.resolution_x, empty_scene.render.resolution_y
    assert (h, w) == recon.image_size
    assert camera.data.sensor_fit == "HORIZONTAL"
    for i, frame in enumerate(range(empty_scene.frame_start, empty_scene.frame_end + 1)):
        _, lens, shift_x, shift_y = _camera_at(empty_scene, camera, frame)
        fx = lens / camera.data.sensor_width * w
        cx = w / 2 - shift_x * w
        cy = h / 2 + shift_y * w
        np.testing.assert_allclose([fx, cx, cy], recon.K[i][[0, 0, 1], [0, 2, 2]], rtol=1e-5)
    assert camera.data.animation_data.action is not None  # the zoom is keyed, not one lens


@pytest.mark.parametrize("floor_fit", [False, True])
def test_points_project_onto_their_pixels(empty_scene, bundle, floor_fit):
    path, recon = bundle
    import_bundle(bpy.context, path, ImportOptions(floor_fit=floor_fit))
    points = bpy.data.objects[f"{NAME} Points"]
    mesh = points.data
    xyz = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.attributes["position"].data.foreach_get("vector", xyz)
    frame_of = np.empty(len(mesh.vertices), np.int32)
    mesh.attributes["frame"].data.foreach_get("value", frame_of)
    world = np.array(points.matrix_world)
    xyz = xyz.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3]
    h, w = recon.image_size
    for i in (0, 5, len(recon.frames) - 1):
        frame = empty_scene.frame_start + i
        empty_scene.frame_set(frame)
        mine = xyz[frame_of == frame]
        v, u = np.nonzero(recon.depth[i] > 0)  # the bundle keeps valid pixels in row-major order
        assert len(mine) == len(u)
        pick = np.linspace(0, len(u) - 1, 150).astype(int)
        projected = np.array([world_to_camera_view(empty_scene, empty_scene.camera, Vector(p))[:2]
                              for p in mine[pick]])
        pixels = np.column_stack([projected[:, 0] * w, (1 - projected[:, 1]) * h])
        expected = np.column_stack([u[pick] + 0.5, v[pick] + 0.5])
        assert np.abs(pixels - expected).max() < 1.0


def test_floor_fit_puts_the_floor_at_zero(empty_scene, bundle):
    path, recon = bundle
    import_bundle(bpy.context, path, ImportOptions(floor_fit=True))
    points = bpy.data.objects[f"{NAME} Points"]
    n = len(points.data.vertices)
    xyz = np.empty(n * 3, np.float32)
    points.data.attributes["position"].data.foreach_get("vector", xyz)
    xyz = xyz.reshape(-1, 3).astype(np.float64)
    world = np.array(points.matrix_world)
    on_floor = np.abs(xyz[:, 1] - FLOOR_Y) < 1e-4  # engine world: the floor is y = FLOOR_Y
    assert on_floor.sum() > 1000
    z = xyz[on_floor] @ world[2, :3] + world[2, 3]
    assert np.abs(z).max() < 1e-3
    empty_scene.frame_set(empty_scene.frame_start)
    np.testing.assert_allclose(empty_scene.camera.matrix_world.translation.z, FLOOR_Y, atol=1e-3)


def test_points_carry_linear_colour_confidence_and_frame(empty_scene, bundle):
    path, recon = bundle
    import_bundle(bpy.context, path)
    mesh = bpy.data.objects[f"{NAME} Points"].data
    n = len(mesh.vertices)
    color = np.empty(n * 4, np.float32)
    mesh.color_attributes[COLOR_ATTRIBUTE].data.foreach_get("color", color)
    confidence = np.empty(n, np.float32)
    mesh.attributes["confidence"].data.foreach_get("value", confidence)
    valid = recon.depth[0] > 0
    first = valid.sum()
    np.testing.assert_allclose(color.reshape(-1, 4)[:first, :3], srgb_to_linear(recon.rgb[0][valid]), atol=1e-6)
    np.testing.assert_allclose(confidence[:first], recon.confidence[0][valid])
    assert abs(srgb_to_linear(np.array([128], np.uint8))[0] - 0.2158605) < 1e-6  # the sRGB curve, not gamma 2.2




def test_modifier_shows_the_current_frame_above_the_threshold(empty_scene, bundle):
    path, recon = bundle
    import_bundle(bpy.context, path, ImportOptions(confidence_threshold=1.2))
    obj = bpy.data.objects[f"{NAME} Points"]
    conf = recon.confidence
    for i in (0, 7):
        assert shown_points(empty_scene, obj, 1 + i) == np.sum(conf[i] >= 1.2)
    modifier = obj.modifiers["Parallax Points"]
    assert modifier_input(modifier, "Accumulate") is False
    set_modifier_input(modifier, "Accumulate", True)
    assert modifier_input(modifier, "Accumulate") is True
    obj.update_tag()
    assert shown_points(empty_scene, obj, 1 + 7) == np.sum(conf[:8] >= 1.2)


def test_scene_follows_the_clip(empty_scene, bundle):
    path, recon = bundle
    import_bundle(bpy.context, path)
    render = empty_scene.render
    assert (render.fps, round(render.fps_base, 6)) == (24, 1.001)  # 23.976
    assert (empty_scene.frame_start, empty_scene.frame_end) == (1, len(recon.frames))


def _counts():
    counts = {kind: len(getattr(bpy.data, kind)) for kind in
              ("collections", "objects", "meshes", "cameras", "materials", "node_groups", "images", "actions")}
    tree = compositor_tree(bpy.context.scene)
    counts["compositor nodes"] = len(tree.nodes) if tree else 0
    return counts


def test_reimport_replaces(empty_scene, bundle):
    path, _ = bundle
    import_bundle(bpy.context, path)
    first = _counts()
    assert sum(i.source == "SEQUENCE" for i in bpy.data.images) == 2 and first["compositor nodes"] > 3  # depth, matte
    collection = import_bundle(bpy.context, path, ImportOptions(floor_fit=True))
    assert _counts() == first
    assert collection.name == NAME
    assert sorted(o.name for o in collection.objects) == [f"{NAME} Camera", f"{NAME} Origin", f"{NAME} Points"]


def test_file_import_operator(empty_scene, bundle, tmp_path):
    path, _ = bundle
    for cls in classes:
        bpy.utils.register_class(cls)
    try:
        assert "UNDO" in classes[0].bl_options  # the import is one undo step (undo itself needs a window)
        assert bpy.ops.import_scene.parallax_bundle(filepath=str(path / "scene.json")) == {"FINISHED"}
        assert NAME in bpy.data.collections
        before = _counts()
        with pytest.raises(RuntimeError, match="not a Parallax bundle"):
            bpy.ops.import_scene.parallax_bundle(filepath=str(tmp_path / "scene.json"))
        assert _counts() == before
    finally:
        for cls in reversed(classes):
            bpy.utils.unregister_class(cls)


def test_broken_bundle_changes_nothing(empty_scene, bundle, tmp_path):
    import shutil

    path, _ = bundle
    import_bundle(bpy.context, path)
    before = _counts()
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    (broken / "points" / "000003.ply").unlink()
    with pytest.raises(InputError, match="000003.ply"):
        import_bundle(bpy.context, broken)
    assert _counts() == before


def test_floor_fit_on_noisy_points_and_refusal_without_floor():
    from blender_addon.importer.floor import FloorNotFound, fit_floor
    from tests.synthetic_bundle import rotation

    rng = np.random.default_rng(1)
    floor = np.column_stack([rng.uniform(-5, 5, 3000), rng.uniform(0, 10, 3000), rng.normal(0, 0.01, 3000)])
    wall = np.column_stack([rng.uniform(-5, 5, 4000), np.full(4000, 10.0), rng.uniform(0, 6, 4000)])
    tilt = np.eye(4)
    tilt[:3, :3] = rotation(0.2, 0.3, 0.1)
    tilt[:3, 3] = [0.5, -1.0, 2.0]
    scene = np.vstack([floor, wall]) @ tilt[:3, :3].T + tilt[:3, 3]  # the wall has more points than the floor
    levelled = fit_floor(scene) @ tilt
    normal = levelled[:3, :3] @ [0.0, 0.0, 1.0]
    assert np.degrees(np.arccos(normal[2])) < 0.5
    assert abs(levelled[2, 3]) < 0.02
    with pytest.raises(FloorNotFound):
        fit_floor(wall)


def test_clip_sets_resolution_background_and_scales_the_intrinsics(empty_scene, bundle, tmp_path):
    cv2 = pytest.importorskip("cv2")
    path, recon = bundle
    h, w = recon.image_size
    clip_path = tmp_path / "plate-A.mp4"
    writer = cv2.VideoWriter(str(clip_path), cv2.VideoWriter_fourcc(*"mp4v"), 24, (2 * w, 2 * h))
    for frame in recon.rgb:
        writer.write(cv2.resize(frame[..., ::-1], (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST))
    writer.release()

    collection = import_bundle(bpy.context, path, ImportOptions(clip_path=str(clip_path)))
    assert collection.name == "plate-A"
    render = empty_scene.render
    assert (render.resolution_x, render.resolution_y) == (2 * w, 2 * h)  # the clip's, not the depth maps'
    assert empty_scene.active_clip.filepath.endswith("plate-A.mp4")
    camera = empty_scene.camera
    assert camera.data.show_background_images
    assert camera.data.background_images[0].clip == empty_scene.active_clip
    i = 9
    _, lens, shift_x, shift_y = _camera_at(empty_scene, camera, empty_scene.frame_start + i)
    K = np.diag([2.0, 2.0, 1.0]) @ recon.K[i]  # the bundle's K in clip pixels
    np.testing.assert_allclose(
        [lens / camera.data.sensor_width * 2 * w, w - shift_x * 2 * w, h + shift_y * 2 * w],
        [K[0, 0], K[0, 2], K[1, 2]], rtol=1e-5)


def test_undecodable_clip_is_named_and_changes_nothing(empty_scene, bundle, tmp_path):
    path, _ = bundle
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    before = _counts()
    with pytest.raises(InputError, match="cannot decode the clip"):
        import_bundle(bpy.context, path, ImportOptions(clip_path=str(junk)))
    assert _counts() == before and len(bpy.data.movieclips) == 0


@pytest.mark.parametrize("rotation_mode", ["XYZ", "QUATERNION"])
def test_camera_rotation_keys_stay_continuous_through_a_full_turn(empty_scene, rotation_mode):
    from blender_addon.importer.camera import build_camera

    n = 40
    angles = np.linspace(0, 2 * np.pi * 1.2, n)  # more than a full pan: plain conversion jumps at 180 degrees
    matrices = np.tile(np.eye(4), (n, 1, 1))
    matrices[:, 0, 0] = matrices[:, 1, 1] = np.cos(angles)
    matrices[:, 0, 1], matrices[:, 1, 0] = -np.sin(angles), np.sin(angles)
    K = np.tile(np.array([[50.0, 0, 32], [0, 50, 24], [0, 0, 1]]), (n, 1, 1))
    camera = build_camera("Pan", matrices, K, (48, 64), (48, 64), np.arange(1, n + 1), (0.1, 100.0),
                          rotation_mode)
    empty_scene.collection.objects.link(camera)
    assert camera.rotation_mode == rotation_mode
    rotations = []
    for frame in range(1, n + 1):
        empty_scene.frame_set(frame)
        rotations.append(np.array(camera.rotation_quaternion if rotation_mode == "QUATERNION"
                                  else camera.rotation_euler))
        np.testing.assert_allclose(np.array(camera.matrix_world)[:3, :3], matrices[frame - 1, :3, :3], atol=1e-5)
    rotations = np.array(rotations)
    if rotation_mode == "QUATERNION":
        assert np.all(np.sum(rotations[1:] * rotations[:-1], axis=1) > 0)
    else:  # the pan angle grows steadily past 360 degrees, no wrap back
        np.testing.assert_allclose(rotations[:, 2], angles, atol=1e-5)
    # A constant lens and principal point are keyed once.
    curves = {c.data_path: len(c.keyframe_points) for c in _fcurves(camera.data)}
    assert curves == {"lens": 1, "shift_x": 1, "shift_y": 1}
    assert camera.data.lens == pytest.approx(50 / 64 * 36)


def _fcurves(id_block):
    """The F-curves animating id_block (Blender 4.4+ slotted actions, or the action's own curves)."""
    action = id_block.animation_data.action
    if not hasattr(action, "slots"):
        return list(action.fcurves)
    return list(action.layers[0].strips[0].channelbag(id_block.animation_data.action_slot).fcurves)


def test_only_what_is_asked_for_is_imported(empty_scene, bundle):
    path, _ = bundle
    collection = import_bundle(bpy.context, path, ImportOptions(camera=False, depth=False))
    assert sorted(o.name for o in collection.objects) == [f"{NAME} Origin", f"{NAME} Points"]
    assert empty_scene.camera is None and compositor_tree(empty_scene) is None
    assert not any(i.source == "SEQUENCE" for i in bpy.data.images)
