"""The shadow catcher and the Background view layer in headless Blender: the plane lies on the synthetic floor,
the view layers are set up as Setup Tracking Scene's, a re-import keeps them wired, and a Cycles render puts a
CG ball's shadow on the plate and leaves the rest of the plate as it was."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
pytest.importorskip("OpenEXR")
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from mathutils import Vector  # noqa: E402

from blender_addon.importer import ImportOptions, import_bundle  # noqa: E402
from blender_addon.importer.depth import compositor_tree  # noqa: E402
from blender_addon.importer.shadow_catcher import LAYER, LAYER_MARK  # noqa: E402
from blender_addon.importer.transforms import srgb_to_linear  # noqa: E402
from engine.formats.bundle import write_bundle  # noqa: E402
from tests.plate_clip import render  # noqa: E402
from tests.synthetic_bundle import FLOOR_Y, synthetic_reconstruction  # noqa: E402

NAME = "plate_0001"


pytestmark = pytest.mark.usefixtures("importer_operators")


def _import(plate_bundle):
    path, _, first_file, _ = plate_bundle
    return import_bundle(bpy.context, path, ImportOptions(clip_path=str(first_file)))


@pytest.fixture
def scene(plate_bundle):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    _import(plate_bundle)
    scene = bpy.context.scene
    cg = bpy.data.collections.new("CG")  # the artist's CG
    scene.collection.children.link(cg)
    bpy.context.view_layer.objects.active = scene.camera
    return scene


def _layer(view_layer, name):
    return next(c for c in view_layer.layer_collection.children if c.collection.name == name)


def _shadow_chain(scene):
    """(alpha-over node, its foreground's render layer name, its background's source node) feeding the Plate."""
    tree = compositor_tree(scene)
    group = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeGroup")
    over = group.inputs["Plate"].links[0].from_node
    assert over.bl_idname == "CompositorNodeAlphaOver"
    below, above = (over.inputs["Background"], over.inputs["Foreground"]) if "Foreground" in over.inputs \
        else (over.inputs[1], over.inputs[2])  # 4.x: Fac, Image, Image
    return over, above.links[0].from_node.layer, below.links[0].from_node


def _plate_source(scene):
    """The node that gave the depth composite its plate (the end of the plate's scaling)."""
    group = next(n for n in compositor_tree(scene).nodes if n.bl_idname == "CompositorNodeGroup")
    return group.inputs["Plate"].links[0].from_node.bl_idname


def test_shadow_catcher_lies_on_the_floor_with_the_background_layer(scene, plate_bundle):
    plate_end = _plate_source(scene)
    assert bpy.ops.parallax.add_shadow_catcher() == {"FINISHED"}
    plane = bpy.data.objects[f"{NAME} Shadow Catcher"]
    assert plane.is_shadow_catcher and plane.parent == bpy.data.objects[f"{NAME} Origin"]
    corners = np.array([plane.matrix_world @ v.co for v in plane.data.vertices])
    assert np.abs(corners[:, 2] + FLOOR_Y).max() < 1e-3  # the floor is FLOOR_Y below the first camera
    points = bpy.data.objects[f"{NAME} Points"]
    xyz = np.array([points.matrix_world @ v.co for v in points.data.vertices])
    floor = xyz[np.abs(xyz[:, 2] + FLOOR_Y) < 1e-3]
    assert len(floor) > 1000
    assert (floor[:, :2] >= corners[:, :2].min(axis=0)).all() and (floor[:, :2] <= corners[:, :2].max(axis=0)).all()

    background = plane.users_collection[0]
    assert [v.name for v in scene.view_layers] == ["ViewLayer", LAYER]
    assert _layer(scene.view_layers["ViewLayer"], background.name).holdout
    layer = scene.view_layers[LAYER]
    assert _layer(layer, "CG").indirect_only and _layer(layer, "CG").holdout and _layer(layer, NAME).exclude
    assert not _layer(layer, background.name).exclude
    _, shown, plate = _shadow_chain(scene)
    assert shown == LAYER and plate.bl_idname == plate_end  # the shadows go over the plate at the render size

    with pytest.raises(RuntimeError, match=f"{NAME} has a shadow catcher already"):
        bpy.ops.parallax.add_shadow_catcher()
    _import(plate_bundle)  # a re-run rebuilds the compositor nodes: the shadows are wired again, once
    assert bpy.data.objects[f"{NAME} Shadow Catcher"] == plane and plane.parent.name == f"{NAME} Origin"
    _, shown, plate = _shadow_chain(scene)
    assert shown == LAYER and plate.bl_idname == plate_end
    assert sum(n.bl_idname == "CompositorNodeRLayers" for n in compositor_tree(scene).nodes) == 2


def _layer_settings(view_layer, collections):
    """What an artist may have set on a view layer: its own settings and its collections' (those named)."""
    entries = {}

    def walk(layer_collection):
        for child in layer_collection.children:
            if child.collection.name in collections:
                entries[child.collection.name] = (child.exclude, child.holdout, child.indirect_only,
                                                  child.hide_viewport)
            walk(child)

    walk(view_layer.layer_collection)
    return (view_layer.name, view_layer.use, view_layer.samples, view_layer.use_pass_z, view_layer.use_pass_mist,
            view_layer.get("artist"), view_layer.get(LAYER_MARK), entries)


def test_an_artists_background_layer_is_left_as_it_was(scene, plate_bundle):
    """A view layer named Background that Parallax did not make is never edited: Add Shadow Catcher makes its
    own (another name), and a second shadow catcher (after the first is deleted) reuses Parallax's alone."""
    artists = scene.view_layers.new(LAYER)
    artists["artist"] = "my background pass"
    artists.samples = 7
    artists.use_pass_mist = True
    _layer(artists, "CG").exclude = True  # settings Add Shadow Catcher would change on its own layer
    _layer(artists, NAME).indirect_only = True
    collections = [c.name for c in bpy.data.collections]
    before = _layer_settings(artists, collections)
    assert before[-1] == {"CG": (True, False, False, False), NAME: (False, False, True, False)}

    bpy.ops.parallax.add_shadow_catcher()
    assert _layer_settings(scene.view_layers[LAYER], collections) == before
    ours = [v for v in scene.view_layers if v.get(LAYER_MARK)]
    assert len(ours) == 1 and ours[0].name not in ("ViewLayer", LAYER) and ours[0].name.startswith(LAYER)
    assert _layer(ours[0], "CG").indirect_only and _layer(ours[0], NAME).exclude  # set on Parallax's layer
    _, shown, _ = _shadow_chain(scene)
    assert shown == ours[0].name  # the compositor renders Parallax's layer, not the artist's

    bpy.data.objects.remove(bpy.data.objects[f"{NAME} Shadow Catcher"])
    bpy.ops.parallax.add_shadow_catcher()
    _import(plate_bundle)  # and a re-import wires it again
    assert [v.name for v in scene.view_layers] == ["ViewLayer", LAYER, ours[0].name]
    assert _layer_settings(scene.view_layers[LAYER], collections) == before  # the import's settings carried
    _, shown, _ = _shadow_chain(scene)
    assert shown == ours[0].name
    assert _layer(ours[0], NAME).exclude  # the re-import's collection (new) is not rendered there either


def test_reimport_keeps_the_artists_settings_on_the_collection(scene, plate_bundle, tmp_path):
    """A re-import (of another bundle of the same clip) rebuilds the import's collection; what the artist set on
    the earlier one goes to the new one: per view layer exclude / holdout / indirect-only / hide, the collection's
    own toggles, colour tag and custom properties, where it is linked and the artist's collection inside it.
    In Parallax's Background layer the importer's rule wins: the import is excluded there."""
    _, _, first_file, _ = plate_bundle
    bpy.ops.parallax.add_shadow_catcher()
    ours = next(v for v in scene.view_layers if v.get(LAYER_MARK))
    excluding, holding = scene.view_layers.new("Mattes"), scene.view_layers.new("Holdouts")
    earlier = bpy.data.collections[NAME]
    _layer(excluding, NAME).exclude = True
    _layer(holding, NAME).holdout = True
    _layer(scene.view_layers["ViewLayer"], NAME).indirect_only = True
    _layer(scene.view_layers["ViewLayer"], NAME).hide_viewport = True
    _layer(ours, NAME).exclude = False  # the artist un-excludes it in Parallax's layer
    earlier.hide_render = earlier.hide_select = True
    earlier.color_tag = "COLOR_04"
    earlier.instance_offset = (1.0, 2.0, 3.0)
    earlier["artist_note"] = "points for layout"
    witnesses = bpy.data.collections.new("Witnesses")  # the artist's collection inside the import's
    earlier.children.link(witnesses)
    _layer(holding, NAME).children["Witnesses"].indirect_only = True
    marker = bpy.data.objects.new("Marker", None)  # and an object of theirs in it
    earlier.objects.link(marker)
    points_before = len(bpy.data.objects[f"{NAME} Points"].data.vertices)

    other = write_bundle(synthetic_reconstruction(num_frames=10, seed=1), tmp_path / "other")
    with pytest.raises(ValueError):  # a re-import failing while it builds (a bad option from a script)
        import_bundle(bpy.context, other, ImportOptions(clip_path=str(first_file), confidence_threshold="high"))
    assert bpy.data.collections[NAME] == earlier and earlier["artist_note"] == "points for layout"
    assert _layer(excluding, NAME).exclude and not _layer(ours, NAME).exclude  # left as they were
    collection = import_bundle(bpy.context, other, ImportOptions(clip_path=str(first_file)))

    assert collection.name == NAME and collection != earlier
    assert len(bpy.data.objects[f"{NAME} Points"].data.vertices) != points_before  # the other bundle's points
    assert not [c.name for c in bpy.data.collections if "replaced" in c.name]
    assert _layer(excluding, NAME).exclude and not _layer(excluding, NAME).holdout
    assert _layer(holding, NAME).holdout and not _layer(holding, NAME).exclude
    view = _layer(scene.view_layers["ViewLayer"], NAME)
    assert view.indirect_only and view.hide_viewport and not view.exclude
    assert collection.hide_render and collection.hide_select and not collection.hide_viewport
    assert collection.color_tag == "COLOR_04" and tuple(collection.instance_offset) == (1.0, 2.0, 3.0)
    assert collection["artist_note"] == "points for layout"
    assert set(collection.objects) == {bpy.data.objects[f"{NAME} {role}"] for role in ("Camera", "Origin", "Points")} \
        | {marker}
    assert list(collection.children) == [witnesses]
    assert _layer(holding, NAME).children["Witnesses"].indirect_only
    assert not _layer(excluding, NAME).children["Witnesses"].indirect_only
    assert sorted(c.collection.name for c in scene.view_layers["ViewLayer"].layer_collection.children) == \
        ["CG", NAME, f"{NAME} Background"]  # in the scene once, at its top
    # Parallax's layer follows its rules: the import excluded, the CG indirect-only and held out.
    assert _layer(ours, NAME).exclude and not _layer(ours, NAME).holdout
    assert _layer(ours, "CG").indirect_only and _layer(ours, "CG").holdout
    assert not _layer(ours, f"{NAME} Background").exclude


def test_a_reimport_goes_where_the_artist_moved_the_collection(scene, plate_bundle):
    """The artist moved the import's collection into their own: the new one is there, not at the scene's top,
    and still excluded from Parallax's Background layer."""
    bpy.ops.parallax.add_shadow_catcher()
    plates = bpy.data.collections.new("Plates")
    scene.collection.children.link(plates)
    plates.children.link(bpy.data.collections[NAME])
    scene.collection.children.unlink(bpy.data.collections[NAME])
    collection = _import(plate_bundle)
    assert list(plates.children) == [collection]
    assert NAME not in scene.collection.children
    ours = next(v for v in scene.view_layers if v.get(LAYER_MARK))
    assert _layer(ours, "Plates").children[NAME].exclude


def test_missing_floor_is_refused(plate_bundle):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    path, _, first_file, _ = plate_bundle
    import_bundle(bpy.context, path, ImportOptions(points=False, clip_path=str(first_file)))
    bpy.context.view_layer.objects.active = bpy.context.scene.camera
    with pytest.raises(RuntimeError, match="the import has no points to find the floor in"):
        bpy.ops.parallax.add_shadow_catcher()
    assert LAYER not in bpy.context.scene.view_layers


def test_a_cg_balls_shadow_darkens_the_plate_and_nothing_else(scene, plate_bundle, tmp_path):
    _, _, _, plates = plate_bundle
    bpy.data.objects[f"{NAME} Points"].hide_render = True
    bpy.ops.parallax.add_shadow_catcher()
    ball_at, radius = Vector((-0.6, 6.0, -1.0)), 0.25
    bpy.ops.mesh.primitive_uv_sphere_add(radius=radius, location=ball_at)
    ball = bpy.context.active_object
    for collection in ball.users_collection:
        collection.objects.unlink(ball)
    bpy.data.collections["CG"].objects.link(ball)
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    bpy.data.collections["CG"].objects.link(sun)
    direction = Vector((1.0, 0.0, -0.5)).normalized()  # the light travels +x and down: the shadow falls at +x
    sun.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    sun.data.energy = 3.0
    shadow_at = ball_at + direction * ((ball_at.z + FLOOR_Y) / -direction.z)
    elsewhere = Vector((-2.0, 5.0, -FLOOR_Y))

    scene.render.engine = "CYCLES"
    scene.cycles.samples = 4
    scene.cycles.use_denoising = False
    scene.render.image_settings.file_format = "OPEN_EXR"
    shown = render(scene, 1, tmp_path / "shadow.exr")
    plate = srgb_to_linear(plates[0])
    h, w = shown.shape[:2]

    def pixel(p):
        u, v, _ = world_to_camera_view(scene, scene.camera, p)
        return int(v * h) * -1 + h - 1, int(u * w)

    sy, sx = pixel(shadow_at)
    by, bx = pixel(ball_at)
    assert np.hypot(sy - by, sx - bx) > 10  # the ball does not hide its shadow
    assert shown[sy, sx].mean() < 0.5 * plate[sy, sx].mean()
    ey, ex = pixel(elsewhere)
    np.testing.assert_allclose(shown[ey, ex], plate[ey, ex], atol=0.02)
    assert np.abs(shown - plate)[:h // 3].max() < 0.02  # the wall and sky, far from ball and shadow
