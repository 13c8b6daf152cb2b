"""The import as a matchmove an artist keeps working on: time as the plate's (Start Frame, frame offset, the
artist's frame range), re-imports that keep the artist's edits to the camera, and the startup Cube."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.importer import ImportOptions, import_bundle, import_notes  # noqa: E402
from blender_addon.importer.depth import compositor_tree  # noqa: E402
from blender_addon.importer.replace import TAG  # noqa: E402
from blender_addon.importer.transforms import srgb_to_linear  # noqa: E402
from tests.plate_clip import render as _render  # noqa: E402

pytest.importorskip("OpenEXR")
NAME = "plate_0001"  # the import is named after the clip's first file


def _camera_matrices(scene, camera, frames):
    out = []
    for f in frames:
        scene.frame_set(f)
        out.append(np.array(camera.matrix_world))
    return np.array(out)


def _reference(path, first_file):
    """Camera matrices per clip frame and the lens of a plain import (clip at its defaults, frames 1..N)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    import_bundle(bpy.context, path, ImportOptions(points=False, depth=False, clip_path=str(first_file)))
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, 12)
    matrices = _camera_matrices(scene, scene.camera, range(1, 13))
    scene.frame_set(1)
    return matrices, scene.camera.data.lens  # the lens at frame 1 (the shot zooms)


@pytest.mark.parametrize("offset", [0, 3])
def test_start_frame_and_offset_key_the_camera_at_the_plates_frames(plate_bundle, tmp_path, offset):
    path, _, first_file, plates = plate_bundle
    reference, _ = _reference(path, first_file)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    clip = bpy.data.movieclips.load(str(first_file))
    clip.frame_start, clip.frame_offset = 1001, offset  # VFX numbering; the offset skips files
    collection = import_bundle(bpy.context, path, ImportOptions(points=False, clip_path=str(first_file)))
    scene = bpy.context.scene
    first = 1001 - offset
    assert (scene.frame_start, scene.frame_end) == (first, first + 11) and import_notes(collection) == []
    np.testing.assert_allclose(_camera_matrices(scene, scene.camera, range(first, first + 12)), reference,
                               atol=1e-5)
    depth_node = next(n for n in compositor_tree(scene).nodes if n.bl_idname == "CompositorNodeImage")
    assert depth_node.frame_start == first
    # The plate the compositor shows at a frame is the frame the camera was solved on.
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.render.image_settings.file_format = "OPEN_EXR"
    shown = _render(scene, first + 7, tmp_path / "f.exr")
    assert np.abs(shown - srgb_to_linear(plates[7])).max() < 1e-3


def test_a_range_the_artist_set_is_kept_and_said(plate_bundle):
    path, _, first_file, _ = plate_bundle
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 5, 8  # the artist works on part of the shot
    collection = import_bundle(bpy.context, path, ImportOptions(points=False, clip_path=str(first_file)))
    assert (scene.frame_start, scene.frame_end) == (5, 8)
    assert import_notes(collection) == ["kept the scene's frame range 5-8; the shot is frames 1-12 (set Start/End "
                                        "in the Output properties)"]
    scene.frame_start, scene.frame_end = 1, 250  # back at Blender's default: the import sets the shot's range
    import_bundle(bpy.context, path, ImportOptions(points=False, clip_path=str(first_file)))
    assert (scene.frame_start, scene.frame_end) == (1, 12)
    clip = bpy.data.movieclips[0]
    clip.frame_start = 101  # the range the import set may follow the clip
    collection = import_bundle(bpy.context, path, ImportOptions(points=False, clip_path=str(first_file)))
    assert (scene.frame_start, scene.frame_end) == (101, 112) and import_notes(collection) == []


def test_reimport_keeps_the_artists_edits_to_the_camera(plate_bundle):
    path, recon, first_file, _ = plate_bundle
    reference, lens = _reference(path, first_file)
    options = ImportOptions(points=False, depth=False, clip_path=str(first_file))
    scene = bpy.context.scene
    camera = scene.camera
    camera.data.sensor_width = 23.76  # Super 35
    camera["artist_note"] = "hero cam"
    camera.constraints.new("LIMIT_SCALE")
    child = bpy.data.objects.new("Witness", None)
    scene.collection.objects.link(child)
    child.parent = camera
    rig = bpy.data.objects.new("Rig", None)  # the artist parents the camera to a moved, turned rig
    scene.collection.objects.link(rig)
    rig.location = (2.0, -1.0, 0.5)
    rig.rotation_euler = (0.0, 0.0, 0.4)
    bpy.context.view_layer.update()
    camera.parent = rig
    camera.matrix_parent_inverse = rig.matrix_world.inverted()

    import_bundle(bpy.context, path, options)  # a re-run

    assert scene.camera == camera and camera.name == f"{NAME} Camera"
    assert child.parent == camera and camera.parent == rig
    assert camera["artist_note"] == "hero cam" and [c.type for c in camera.constraints] == ["LIMIT_SCALE"]
    assert camera.data.sensor_width == pytest.approx(23.76)
    scene.frame_set(1)
    assert camera.data.lens == pytest.approx(lens * 23.76 / 35)  # the same field of view on the artist's sensor
    np.testing.assert_allclose(_camera_matrices(scene, camera, range(1, 13)), reference, atol=1e-5)
    assert not [b.name for b in [*bpy.data.objects, *bpy.data.cameras, *bpy.data.actions] if "replaced" in b.name]
    assert len(bpy.data.cameras) == 1 and len(bpy.data.actions) == 2  # motion and lens, the earlier ones gone


def test_the_startup_cube_around_the_camera_is_hidden_and_said(plate_bundle):
    path, _, first_file, _ = plate_bundle
    bpy.ops.wm.read_factory_settings(use_empty=False)  # the startup scene: Cube, Light, Camera
    cube = bpy.data.objects["Cube"]
    options = ImportOptions(points=False, clip_path=str(first_file))
    collection = import_bundle(bpy.context, path, options)
    assert cube.hide_render and cube.hide_viewport
    assert import_notes(collection) == ["hid Cube: the camera passes inside (shown again from the Outliner, it "
                                        "stays shown on re-imports)"]
    assert not bpy.data.objects["Light"].hide_render
    cube.hide_render = cube.hide_viewport = False  # the artist wants it back
    collection = import_bundle(bpy.context, path, options)
    assert not cube.hide_render and import_notes(collection) == []


def test_another_imports_objects_around_the_camera_stay_shown(plate_bundle):
    path, _, first_file, _ = plate_bundle
    bpy.ops.wm.read_factory_settings(use_empty=False)
    cube = bpy.data.objects["Cube"]
    cube[TAG] = "another shot"  # as if another import had made it (its points around this camera, say)
    collection = import_bundle(bpy.context, path, ImportOptions(depth=False, clip_path=str(first_file)))
    assert not cube.hide_render and import_notes(collection) == []


def test_a_new_camera_takes_the_clips_sensor_width(plate_bundle):
    path, _, first_file, _ = plate_bundle
    reference, lens = _reference(path, first_file)  # with a clip at Blender's defaults: a 35 mm sensor
    assert bpy.context.scene.camera.data.sensor_width == pytest.approx(35.0)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    clip = bpy.data.movieclips.load(str(first_file))
    clip.tracking.camera.sensor_width = 23.76  # Movie Clip Editor > Track > Camera: the artist's camera
    import_bundle(bpy.context, path, ImportOptions(points=False, depth=False, clip_path=str(first_file)))
    scene = bpy.context.scene
    assert scene.camera.data.sensor_width == pytest.approx(23.76)
    scene.frame_set(1)
    assert scene.camera.data.lens == pytest.approx(lens * 23.76 / 35.0)  # the same field of view
    np.testing.assert_allclose(_camera_matrices(scene, scene.camera, range(1, 13)), reference, atol=1e-5)
