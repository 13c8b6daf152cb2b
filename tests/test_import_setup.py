"""Scene setup in headless Blender: Set Origin / Floor / Scale / X Axis / Y Axis move the import's origin empty,
the camera and points with it (the camera still sees each point on the same pixel), against known answers on the
synthetic scene, and a re-import keeps the setup."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Matrix, Vector  # noqa: E402

from blender_addon.importer import import_bundle  # noqa: E402
from blender_addon.importer.depth import compositor_tree  # noqa: E402
from blender_addon.importer.origin import ORIGIN  # noqa: E402
from tests.synthetic_bundle import FLOOR_Y  # noqa: E402

NAME = "synthetic-shot"


pytestmark = pytest.mark.usefixtures("importer_operators")


@pytest.fixture
def imported(bundle):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    import_bundle(bpy.context, bundle[0])
    return bpy.context.scene


def _objects():
    return (bpy.data.objects[f"{NAME} Origin"], bpy.data.objects[f"{NAME} Camera"],
            bpy.data.objects[f"{NAME} Points"])


def _local_points():
    mesh = bpy.data.objects[f"{NAME} Points"].data
    xyz = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", xyz)
    return xyz.reshape(-1, 3).astype(np.float64)


def _world_points():
    bpy.context.view_layer.update()
    world = np.array(bpy.data.objects[f"{NAME} Points"].matrix_world)
    return _local_points() @ world[:3, :3].T + world[:3, 3]


def _floor():
    """Indices of the points on the synthetic floor (engine world y = FLOOR_Y)."""
    return np.flatnonzero(np.abs(_local_points()[:, 1] - FLOOR_Y) < 1e-4)


def _cameras(scene, frames=(1, 6, 12)):
    camera = bpy.data.objects[f"{NAME} Camera"]
    out = []
    for f in frames:
        scene.frame_set(f)
        out.append(np.array(camera.matrix_world))
    return np.array(out)


def _pixels(scene, indices, frames=(1, 6, 12)):
    """Where the camera sees points `indices` at `frames` (normalised view coordinates and depth order)."""
    _, camera, _ = _objects()
    out = []
    for f in frames:
        scene.frame_set(f)
        world = _world_points()[indices]
        out.append([tuple(world_to_camera_view(scene, camera, Vector(p)))[:2] for p in world])
    return np.array(out)


def _edit_select(indices):
    """Edit Mode on the import's points with exactly `indices` selected."""
    points = bpy.data.objects[f"{NAME} Points"]
    bpy.context.view_layer.objects.active = points
    points.select_set(True)
    bpy.ops.object.mode_set(mode="OBJECT")  # the mesh's selection reaches Edit Mode when it is entered
    selected = np.zeros(len(points.data.vertices), bool)
    selected[indices] = True
    points.data.vertices.foreach_set("select", selected)
    bpy.ops.object.mode_set(mode="EDIT")


def _empties(*locations):
    """Selected empties at `locations`; the active object stays the import's camera."""
    for obj in bpy.context.selected_objects:
        obj.select_set(False)
    for i, location in enumerate(locations):
        empty = bpy.data.objects.new(f"Marker {i}", None)
        bpy.context.scene.collection.objects.link(empty)
        empty.location = location
        empty.select_set(True)
    bpy.context.view_layer.objects.active = bpy.data.objects[f"{NAME} Camera"]
    bpy.context.view_layer.update()


def test_the_import_hangs_under_its_origin(imported):
    origin, camera, points = _objects()
    assert origin[ORIGIN] and origin.type == "EMPTY"
    assert camera.parent == origin and points.parent == origin
    assert np.allclose(np.array(origin.matrix_world), np.eye(4))


def test_set_origin_to_the_cursor_moves_camera_and_points(imported):
    probe = _floor()[::500]
    cameras, pixels, points = _cameras(imported), _pixels(imported, probe), _world_points()
    imported.cursor.location = (1.0, 2.0, -0.5)
    assert bpy.ops.parallax.set_origin(source="CURSOR") == {"FINISHED"}
    shift = np.array([1.0, 2.0, -0.5])
    np.testing.assert_allclose(_world_points(), points - shift, atol=1e-5)
    np.testing.assert_allclose(_cameras(imported)[:, :3, 3], cameras[:, :3, 3] - shift, atol=1e-5)
    np.testing.assert_allclose(_pixels(imported, probe), pixels, atol=1e-6)  # the render still matches


def test_set_origin_to_selected_points_puts_their_centroid_at_zero(imported):
    picked = _floor()[[3, 300, 3000]]
    _edit_select(picked)
    assert bpy.ops.parallax.set_origin(source="SELECTED") == {"FINISHED"}
    assert bpy.data.objects[f"{NAME} Points"].mode == "OBJECT"  # left Edit Mode: undo holds the origin's move
    np.testing.assert_allclose(_world_points()[picked].mean(axis=0), 0.0, atol=1e-5)


@pytest.mark.parametrize("source", ["FOUND", "SELECTED"])
def test_set_floor_puts_the_floor_at_zero_with_the_camera_above(imported, source):
    origin, _, _ = _objects()
    origin.matrix_world = Matrix.Translation((0.3, -2.0, 4.0)) @ Matrix.Rotation(0.35, 4, "X") @ \
        Matrix.Rotation(-0.2, 4, "Y")  # a scene tilted and moved off its floor
    probe = _floor()[::500]
    pixels = _pixels(imported, probe)
    if source == "SELECTED":
        _edit_select(_floor()[::97])
    assert bpy.ops.parallax.set_floor(source=source) == {"FINISHED"}
    assert bpy.data.objects[f"{NAME} Points"].mode == "OBJECT"  # left Edit Mode: undo holds the origin's move
    assert np.abs(_world_points()[_floor()][:, 2]).max() < 1e-3
    imported.frame_set(1)  # the first camera is FLOOR_Y above the floor
    assert _cameras(imported, (1,))[0, 2, 3] == pytest.approx(FLOOR_Y, abs=1e-3)
    np.testing.assert_allclose(_pixels(imported, probe), pixels, atol=1e-6)


def test_set_scale_makes_two_points_the_given_distance_apart(imported):
    floor = _floor()
    a = floor[0]
    b = floor[np.argmin(np.abs(np.linalg.norm(_local_points()[floor] - _local_points()[a], axis=1) - 2.0))]
    assert np.linalg.norm(_world_points()[b] - _world_points()[a]) == pytest.approx(2.0, abs=0.05)
    probe = floor[::500]
    pixels = _pixels(imported, probe)
    _edit_select([a, b])
    assert bpy.ops.parallax.set_scale(distance=5.0) == {"FINISHED"}
    assert bpy.data.objects[f"{NAME} Points"].mode == "OBJECT"  # left Edit Mode: undo holds the origin's move
    assert np.linalg.norm(_world_points()[b] - _world_points()[a]) == pytest.approx(5.0, abs=1e-4)
    np.testing.assert_allclose(_pixels(imported, probe), pixels, atol=1e-6)


def test_set_scale_by_two_objects_scales_the_scene_and_the_plate_depth(imported):
    points = _world_points()
    _, camera, _ = _objects()
    clip_end = camera.data.clip_end
    _empties((1.0, 1.0, 0.0), (1.0, 3.0, 0.0))  # 2.0 apart
    assert bpy.ops.parallax.set_scale(distance=5.0) == {"FINISHED"}
    np.testing.assert_allclose(_world_points(), points * 2.5, atol=1e-4)
    assert camera.data.clip_end == pytest.approx(clip_end * 2.5)
    # The compositor's plate depth is in scene units too, so CG still Z-combines against it.
    imported.frame_set(2)
    multiply = next(n for n in compositor_tree(imported).nodes if getattr(n, "operation", "") == "MULTIPLY"
                    and n.inputs[1].is_linked is False and n.location.x == -150)
    assert multiply.inputs[1].default_value == pytest.approx(2.5)


@pytest.mark.parametrize("axis", ["X", "Y"])
def test_set_axis_turns_the_picked_point_onto_the_axis(imported, axis):
    picked = _floor()[1234]
    before = _world_points()[picked]
    probe = _floor()[::500]
    pixels = _pixels(imported, probe)
    _edit_select([picked])
    operator = bpy.ops.parallax.set_x_axis if axis == "X" else bpy.ops.parallax.set_y_axis
    assert operator() == {"FINISHED"}
    assert bpy.data.objects[f"{NAME} Points"].mode == "OBJECT"  # left Edit Mode: undo holds the origin's move
    after = _world_points()[picked]
    along, across = (0, 1) if axis == "X" else (1, 0)
    assert after[along] == pytest.approx(np.hypot(*before[:2]), abs=1e-4) and abs(after[across]) < 1e-4
    assert after[2] == pytest.approx(before[2], abs=1e-5)  # turned about Z only
    np.testing.assert_allclose(_pixels(imported, probe), pixels, atol=1e-6)


def test_a_reimport_keeps_the_setup(imported, bundle):
    imported.cursor.location = (0.5, 4.0, -1.5)
    bpy.ops.parallax.set_origin(source="CURSOR")
    _empties((0.0, 0.0, 0.0), (0.0, 0.0, 2.0))
    bpy.ops.parallax.set_scale(distance=3.0)
    _empties((1.0, 1.0, 0.0))
    bpy.ops.parallax.set_x_axis()
    origin, camera, points = _objects()
    matrix, cameras, world = np.array(origin.matrix_world), _cameras(imported), _world_points()
    assert not np.allclose(matrix, np.eye(4))

    import_bundle(bpy.context, bundle[0])  # a re-run

    assert _objects()[:2] == (origin, camera) and origin.name == f"{NAME} Origin"
    np.testing.assert_allclose(np.array(origin.matrix_world), matrix, atol=1e-6)
    np.testing.assert_allclose(_cameras(imported), cameras, atol=1e-5)
    np.testing.assert_allclose(_world_points(), world, atol=1e-4)
    assert _objects()[2].parent == origin
    assert sum(1 for o in bpy.data.objects if o.get(ORIGIN)) == 1
    assert not [o.name for o in bpy.data.objects if "replaced" in o.name]


def test_an_import_without_origin_gets_one(imported):
    origin, camera, points = _objects()
    for obj in (camera, points):
        obj.parent = None  # as imports made before origins
    bpy.data.objects.remove(origin)
    cameras = _cameras(imported)
    imported.cursor.location = (0.0, 0.0, 1.0)
    assert bpy.ops.parallax.set_origin(source="CURSOR") == {"FINISHED"}
    origin, camera, points = _objects()
    assert camera.parent == origin and points.parent == origin
    np.testing.assert_allclose(_cameras(imported)[:, :3, 3], cameras[:, :3, 3] - [0, 0, 1], atol=1e-5)


def test_missing_input_is_refused_and_changes_nothing(imported):
    origin, camera, _ = _objects()
    _empties((1.0, 1.0, 0.0))
    with pytest.raises(RuntimeError, match="Set Scale takes exactly 2 selected points or objects, 1 object selected"):
        bpy.ops.parallax.set_scale(distance=2.0)
    with pytest.raises(RuntimeError, match="Set Floor needs 3 or more selected points or objects, 1 object selected"):
        bpy.ops.parallax.set_floor(source="SELECTED")
    _empties((0.0, 0.0, 3.0))
    with pytest.raises(RuntimeError, match="straight above or below the origin"):
        bpy.ops.parallax.set_y_axis()
    _empties()
    with pytest.raises(RuntimeError, match="Set Origin needs selected points or objects, none selected"):
        bpy.ops.parallax.set_origin(source="SELECTED")
    with pytest.raises(RuntimeError, match="Set X Axis takes exactly 1 selected point or object, 0 points"):
        _edit_select([])
        bpy.ops.parallax.set_x_axis()
    with pytest.raises(RuntimeError, match="Set Scale takes exactly 2 selected points or objects, 1 point selected"):
        _edit_select(_floor()[:1])
        bpy.ops.parallax.set_scale(distance=2.0)
    assert bpy.data.objects[f"{NAME} Points"].mode == "EDIT"  # refused: left as it was
    bpy.ops.object.mode_set(mode="OBJECT")
    rig = bpy.data.objects.new("Rig", None)  # the artist's rig outside the origin
    imported.collection.objects.link(rig)
    camera.parent = rig
    with pytest.raises(RuntimeError, match="parented to Rig, which does not hang under the import's origin"):
        bpy.ops.parallax.set_origin(source="CURSOR")
    assert np.allclose(np.array(origin.matrix_world), np.eye(4))
    bpy.context.view_layer.objects.active = rig
    imported.camera = None
    with pytest.raises(RuntimeError, match="no Parallax import to set up"):
        bpy.ops.parallax.set_origin(source="CURSOR")


def test_the_render_is_the_same_after_the_setup(imported, tmp_path):
    """Cycles renders the points (and the compositor Z-combines them with the plate's depth, now in scene
    units) the same before and after a Set Scale and a Set Floor on a tilted scene."""
    pytest.importorskip("OpenEXR")
    from tests.plate_clip import render

    imported.render.engine = "CYCLES"
    imported.cycles.samples = 1
    imported.render.image_settings.file_format = "OPEN_EXR"
    before = render(imported, 3, tmp_path / "before.exr")
    origin, _, _ = _objects()
    origin.matrix_world = Matrix.Rotation(0.3, 4, "X")
    _empties((0.0, 0.0, 0.0), (0.0, 0.0, 2.0))
    bpy.ops.parallax.set_scale(distance=5.0)
    bpy.ops.parallax.set_floor(source="FOUND")
    assert np.abs(_world_points()[_floor()][:, 2]).max() < 1e-3
    after = render(imported, 3, tmp_path / "after.exr")
    assert before.mean() > 0.05  # the points are in view
    assert np.abs(after - before).mean() < 1e-3
