"""Reliability battery, bundles and import (add-on side, headless bpy): a re-import that fails leaves the scene
exactly as it was (objects, names, render size, frame range, frame rate, compositor), every malformed bundle is
refused with a clear InputError before the scene changes, and same-named clips from different folders get
their own bundle folders and collections."""

from __future__ import annotations

import json
import math
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.errors import InputError  # noqa: E402
from blender_addon.importer import ImportOptions, import_bundle  # noqa: E402
from blender_addon.importer.depth import compositor_tree  # noqa: E402
from blender_addon.importer.replace import TAG  # noqa: E402
from engine.errors import InputError as EngineInputError  # noqa: E402  (the engine's own, not the add-on's copy)
from engine.formats.bundle import write_bundle  # noqa: E402
from tests.reliability.conftest import assert_unchanged, snapshot  # noqa: E402
from tests.synthetic_bundle import synthetic_reconstruction  # noqa: E402

NAME = "synthetic-shot"
KINDS = ("collections", "objects", "meshes", "cameras", "materials", "node_groups", "images", "actions", "movieclips")


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A small bundle (4 frames, 24x32): the earlier import that a failed re-import must keep."""
    return write_bundle(synthetic_reconstruction(num_frames=4, size=(24, 32)),
                        tmp_path_factory.mktemp("good") / "bundle")


@pytest.fixture
def scene(good):
    """The artist's scene: own settings and objects, then a good import of the bundle (with depth)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    scene.frame_start, scene.frame_end, scene.frame_current = 10, 250, 17
    scene.render.fps, scene.render.fps_base = 30, 1.0
    bpy.data.objects.new("Artist Empty", None)
    import_bundle(bpy.context, good)
    return scene


def state() -> dict:
    """Everything an import may touch: data-block names and tags, scene settings, compositor nodes and links."""
    scene = bpy.context.scene
    out = {kind: sorted((b.name, str(b.get(TAG))) for b in getattr(bpy.data, kind)) for kind in KINDS}
    render = scene.render
    out["scene"] = [render.resolution_x, render.resolution_y, render.resolution_percentage, render.fps,
                    round(render.fps_base, 9), scene.frame_start, scene.frame_end, scene.frame_current,
                    scene.camera.name if scene.camera else None,
                    scene.active_clip.name if scene.active_clip else None, scene.view_layers[0].use_pass_z]
    tree = compositor_tree(scene)
    if tree is None:
        out["compositor"] = BLENDER_4_DEFAULT if bpy.app.version < (5, 0, 0) else None
    else:
        out["compositor"] = (
            tree.name if bpy.app.version >= (5, 0, 0) else None,
            sorted((n.name, n.bl_idname, str(n.get(TAG))) for n in tree.nodes),
            sorted((link.from_node.name, link.from_socket.identifier, link.to_node.name, link.to_socket.identifier)
                   for link in tree.links))
    if bpy.app.version < (5, 0, 0):
        out["use_nodes"] = scene.use_nodes
    return out


# Blender 4.x cannot delete a scene's own compositor tree: a scene without one is the same to the artist as this
# tree (what ticking Use Nodes makes) with Use Nodes off. (Its name, which the artist never sees, differs by version.)
BLENDER_4_DEFAULT = (None,
                     [("Composite", "CompositorNodeComposite", "None"),
                      ("Render Layers", "CompositorNodeRLayers", "None")],
                     [("Render Layers", "Image", "Composite", "Image")])


def variant(good: Path, tmp_path: Path, edit=None, **files) -> Path:
    """A copy of the good bundle with scene.json changed by edit(scene) and files replaced by bytes
    (files: relative path with '/' written as '__' -> bytes)."""
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    if edit is not None:
        scene = json.loads((bad / "scene.json").read_text())
        edit(scene)
        (bad / "scene.json").write_text(json.dumps(scene))  # json writes NaN and Infinity as given
    for name, data in files.items():
        (bad / name.replace("__", "/")).write_bytes(data)
    return bad


def refused(bundle: Path, *phrases: str, options: ImportOptions | None = None) -> None:
    """Importing `bundle` raises one InputError naming the problem (and a fix); the scene and the disk are
    as they were."""
    before, files = state(), snapshot(bundle.parent)
    with pytest.raises(InputError) as info:
        import_bundle(bpy.context, bundle, options)
    message = str(info.value)
    assert info.value.fix, message
    for phrase in phrases:
        assert phrase.lower() in message.lower(), message
    assert state() == before
    assert_unchanged(bundle.parent, files)


def _set_frame(scene, i, key, value):
    scene["frames"][i][key] = value


SCENE_EDITS = {
    "fps inf": (lambda s: s.update(fps=math.inf), "frame rate"),
    "fps 1e308": (lambda s: s.update(fps=1e308), "frame rate"),
    "fps nan": (lambda s: s.update(fps=math.nan), "frame rate"),
    "fps zero": (lambda s: s.update(fps=0), "frame rate"),
    "fps negative": (lambda s: s.update(fps=-24), "frame rate"),
    "fps 1e-9": (lambda s: s.update(fps=1e-9), "frame rate"),
    "fps text": (lambda s: s.update(fps="fast"), "malformed"),
    "frame above 2^31": (lambda s: [_set_frame(s, i, "frame", 2**31 + 5 + i) for i in range(4)], "frame numbers"),
    "frame past Blender's end": (lambda s: [_set_frame(s, i, "frame", 2_000_000 + i) for i in range(4)], "1048574"),
    "negative frame": (lambda s: _set_frame(s, 0, "frame", -1), "frame numbers"),
    "repeated frame": (lambda s: _set_frame(s, 1, "frame", 0), "frame numbers"),
    "frame 1e40": (lambda s: _set_frame(s, 3, "frame", 1e40), "frame numbers"),
    "K nan": (lambda s: _set_frame(s, 2, "K", [[math.nan, 0, 16], [0, 30, 12], [0, 0, 1]]), "NaN"),
    "K inf": (lambda s: _set_frame(s, 2, "K", [[math.inf, 0, 16], [0, 30, 12], [0, 0, 1]]), "NaN or inf"),
    "K zero focal": (lambda s: _set_frame(s, 1, "K", [[0, 0, 16], [0, 0, 12], [0, 0, 1]]), "not a camera matrix"),
    "K negative focal": (lambda s: _set_frame(s, 1, "K", [[-30, 0, 16], [0, 30, 12], [0, 0, 1]]), "focal"),
    "K bad last row": (lambda s: _set_frame(s, 1, "K", [[30, 0, 16], [0, 30, 12], [0, 0, 0]]), "not a camera"),
    "K all zero": (lambda s: _set_frame(s, 0, "K", [[0] * 3] * 3), "not a camera matrix"),
    "K wrong shape": (lambda s: _set_frame(s, 0, "K", [[30, 0], [0, 30]]), "malformed"),
    "camera nan": (lambda s: _set_frame(s, 3, "camera_to_world", [[math.nan] * 4] * 3 + [[0, 0, 0, 1]]), "NaN"),
    "camera scaled": (lambda s: _set_frame(s, 2, "camera_to_world", (2 * np.eye(4)).tolist()), "not a rotation"),
    "camera all zero": (lambda s: _set_frame(s, 2, "camera_to_world", [[0] * 4] * 4), "not a rotation"),
    "camera mirrored": (lambda s: _set_frame(s, 1, "camera_to_world", np.diag([1, 1, -1, 1.0]).tolist()),
                        "not a rotation"),
    "camera projective row": (lambda s: _set_frame(s, 1, "camera_to_world", [[1, 0, 0, 0], [0, 1, 0, 0],
                                                                             [0, 0, 1, 0], [0, 0, 1, 1]]),
                              "not a rotation"),
    "no frames": (lambda s: s.update(frames=[]), "no frames"),
    "image size zero": (lambda s: s.update(image_size=[0, 32]), "image_size"),
    "negative num_points": (lambda s: _set_frame(s, 0, "num_points", -3), "num_points"),
    "num_points too high": (lambda s: _set_frame(s, 0, "num_points", 10**6), "scene.json says"),
}


@pytest.mark.parametrize("case", SCENE_EDITS)
def test_malformed_scene_json_is_refused_and_the_earlier_import_stays(scene, good, tmp_path, case):
    edit, phrase = SCENE_EDITS[case]
    refused(variant(good, tmp_path, edit), phrase)


def _ply(count: int, body: bytes = b"", fmt: str = "binary_little_endian", props: str | None = None) -> bytes:
    props = props or ("property float x\nproperty float y\nproperty float z\nproperty uchar red\n"
                      "property uchar green\nproperty uchar blue\nproperty float confidence\n")
    return f"ply\nformat {fmt} 1.0\nelement vertex {count}\n{props}end_header\n".encode() + body


PLY_CASES = {
    "zero bytes": b"",
    "no header end": b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n",
    "not a ply": b"\x89PNG\r\n\x1a\n" + bytes(200),
    "ascii ply": _ply(1, b"0 0 1 255 255 255 1\n", fmt="ascii"),
    "big endian": _ply(1, bytes(19), fmt="binary_big_endian"),
    "other properties": _ply(1, bytes(12), props="property float x\nproperty float y\nproperty float z\n"),
    "count larger than data": _ply(50, bytes(19 * 3)),
    "count smaller than data": _ply(1, bytes(19 * 3)),
    "negative count": _ply(-1, bytes(19)),
    "count not a number": _ply(0).replace(b"vertex 0", b"vertex many"),
    "huge count": _ply(10**15, bytes(19)),
    "binary garbage header": b"ply\n" + bytes(range(256)) * 4,
}


@pytest.mark.parametrize("case", PLY_CASES)
def test_malformed_point_cloud_is_refused(scene, good, tmp_path, case):
    refused(variant(good, tmp_path, **{"points__000002.ply": PLY_CASES[case]}), "000002.ply", "point")


def test_points_with_nan_coordinates_are_refused(scene, good, tmp_path):
    data = bytearray((good / "points" / "000001.ply").read_bytes())
    end = data.index(b"end_header\n") + len(b"end_header\n")
    data[end: end + 4] = struct.pack("<f", math.nan)
    refused(variant(good, tmp_path, **{"points__000001.ply": bytes(data)}), "000001.ply", "NaN")


def _exr_cases(good: Path) -> dict[str, bytes]:
    import OpenEXR

    whole = (good / "depth" / "000001.exr").read_bytes()
    rgb = good.parent / "rgb.exr"
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                      {c: np.ones((24, 32), np.float32) for c in "RGB"}) as f:
        f.write(str(rgb))
    small = good.parent / "small.exr"
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                      {"Y": np.ones((12, 16), np.float32), "confidence": np.ones((12, 16), np.float32)}) as f:
        f.write(str(small))
    half = good.parent / "half.exr"
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                      {"Y": np.ones((24, 32), np.float16), "confidence": np.ones((24, 32), np.float16)}) as f:
        f.write(str(half))
    return {"zero bytes": b"", "truncated": whole[: len(whole) // 2], "header only": whole[:300],
            "text": b"not an exr\n" * 40, "wrong channels": rgb.read_bytes(), "wrong size": small.read_bytes(),
            "half floats": half.read_bytes()}


EXR_CASES = ["zero bytes", "truncated", "header only", "text", "wrong channels", "wrong size", "half floats"]


@pytest.mark.parametrize("case", EXR_CASES)
def test_broken_depth_exr_is_refused(scene, good, tmp_path, case):
    data = _exr_cases(good)[case]
    refused(variant(good, tmp_path, **{"depth__000001.exr": data}), "000001.exr")


def test_broken_depth_is_no_concern_without_depth(scene, good, tmp_path):
    bad = variant(good, tmp_path, **{"depth__000001.exr": b""})
    collection = import_bundle(bpy.context, bad, ImportOptions(depth=False))
    assert collection.name == NAME and len(bpy.data.collections) == 1


def test_a_failure_while_building_puts_the_earlier_import_back(scene, good):
    """A failure after the scene started to change (here a bad option value from a script, met while the
    points are built, after the camera and the scene settings): everything returns to how it was."""
    before = state()
    camera = scene.camera  # re-keyed in place by a re-import: its earlier animation comes back
    action = camera.animation_data.action
    with pytest.raises(ValueError):
        import_bundle(bpy.context, good, ImportOptions(confidence_threshold="high"))
    assert state() == before
    assert scene.camera == camera and camera.animation_data.action == action
    assert action.name == f"{NAME} Camera Motion"
    collection = import_bundle(bpy.context, good)  # and the earlier import is whole and replaceable
    assert collection.name == NAME and state() == before


def test_a_failed_first_import_leaves_no_compositor_behind(good):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    before = state()
    with pytest.raises(ValueError):
        import_bundle(bpy.context, good, ImportOptions(confidence_threshold="high"))
    assert state() == before


def test_a_failed_import_keeps_an_artists_compositor_with_use_nodes_off(good):
    """Blender 4.x keeps a compositor tree while Use Nodes is off: its nodes are the artist's, the switch too."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    if bpy.app.version < (5, 0, 0):
        scene.use_nodes = True
        scene.node_tree.nodes.new("CompositorNodeBlur").name = "Artist Blur"
        scene.use_nodes = False
    before = state()
    with pytest.raises(ValueError):
        import_bundle(bpy.context, good, ImportOptions(confidence_threshold="high"))
    assert state() == before
    import_bundle(bpy.context, good)
    if bpy.app.version < (5, 0, 0):  # a successful import switches the compositor on, beside the artist's nodes
        assert scene.use_nodes and "Artist Blur" in scene.node_tree.nodes


def test_reimport_after_a_refusal_replaces_in_place(scene, good, tmp_path):
    refused(variant(good, tmp_path, lambda s: s.update(fps=math.inf)), "frame rate")
    before = state()
    import_bundle(bpy.context, good, ImportOptions(floor_fit=False))
    assert state() == before  # same names, same settings: the import was replaced, not doubled


def _clip(path: Path, frames: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24, (frames.shape[2], frames.shape[1]))
    for frame in frames:
        writer.write(frame[..., ::-1])
    writer.release()
    return path


def test_same_named_clips_from_two_folders_get_two_imports(good, tmp_path):
    rgb = synthetic_reconstruction(num_frames=4, size=(24, 32)).rgb
    a = _clip(tmp_path / "a" / "plate.mp4", rgb)
    b = _clip(tmp_path / "b" / "plate.mp4", rgb[::-1].copy())
    bpy.ops.wm.read_factory_settings(use_empty=True)
    first = import_bundle(bpy.context, good, ImportOptions(clip_path=str(a)))
    second = import_bundle(bpy.context, good, ImportOptions(clip_path=str(b)))
    assert (first.name, second.name) == ("plate", "plate 2")
    assert sorted(o.name for o in second.objects) == ["plate 2 Camera", "plate 2 Origin", "plate 2 Points"]
    kept = sorted(o.name for o in first.objects)
    again = import_bundle(bpy.context, good, ImportOptions(clip_path=str(a), floor_fit=True))
    assert again.name == "plate" and sorted(o.name for o in again.objects) == kept
    assert sorted(c.name for c in bpy.data.collections) == ["plate", "plate 2"]
    assert {n.get(TAG) for n in compositor_tree(bpy.context.scene).nodes} >= {"plate", "plate 2"}


def test_a_collection_of_the_artist_named_like_the_clip_is_left_alone(good):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    mine = bpy.data.collections.new(NAME)
    bpy.context.scene.collection.children.link(mine)
    collection = import_bundle(bpy.context, good)
    assert collection.name == f"{NAME} 2" and mine.name == NAME and mine.get(TAG) is None


def _bundle_dirs(tmp_path: Path, clips: list[Path]) -> list[Path]:
    import blender_addon.reconstruct as rc

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    dirs = []
    for path in clips:
        clip = bpy.data.movieclips.load(str(path))
        folder = rc.bundle_dir(clip)
        # What the engine writes there: a bundle naming its source clip.
        write_bundle(synthetic_reconstruction(num_frames=2, size=(8, 8)), folder)
        scene = json.loads((folder / "scene.json").read_text())
        scene["source_clip"] = str(path.absolute())
        (folder / "scene.json").write_text(json.dumps(scene))
        dirs.append(folder)
    return dirs


def test_same_named_clips_get_their_own_bundle_folders(tmp_path):
    rgb = synthetic_reconstruction(num_frames=2, size=(16, 16)).rgb
    a = _clip(tmp_path / "a" / "plate.mp4", rgb)
    b = _clip(tmp_path / "b" / "plate.mp4", rgb)
    folders = _bundle_dirs(tmp_path, [a, b, a, b])
    parallax = tmp_path / "parallax"
    assert folders == [parallax / "plate", parallax / "plate-2", parallax / "plate", parallax / "plate-2"]


def test_a_foreign_folder_named_like_the_clip_is_skipped(tmp_path):
    import blender_addon.reconstruct as rc

    (tmp_path / "parallax" / "plate").mkdir(parents=True)
    (tmp_path / "parallax" / "plate" / "thesis.txt").write_text("mine")
    rgb = synthetic_reconstruction(num_frames=2, size=(16, 16)).rgb
    a = _clip(tmp_path / "a" / "plate.mp4", rgb)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    assert rc.bundle_dir(bpy.data.movieclips.load(str(a))) == tmp_path / "parallax" / "plate-2"


def test_the_add_on_warns_when_the_bundle_has_fewer_frames_than_blender_counts(tmp_path):
    """Blender decodes 64 frames of the clip; a bundle of 34 (an engine whose decoder gave up early) is
    imported with a warning naming both numbers. (A file cut short is counted short by Blender too: the
    engine's own check against the header, tests/reliability/test_clips.py, covers that.)"""
    import cv2

    from blender_addon.reconstruct import frame_shortfall

    path = tmp_path / "plate.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24, (64, 48))
    for _ in range(64):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    clip = bpy.data.movieclips.load(str(path))
    note = frame_shortfall(34, clip.frame_duration)
    assert clip.frame_duration == 64 and "has 34 frames but Blender counts 64" in note
    assert frame_shortfall(64, clip.frame_duration) is None


@pytest.mark.parametrize("field, index, value", [("K", (2, 0, 0), math.nan), ("K", (1, 1, 1), -5.0),
                                                 ("camera_to_world", (3, 0, 3), math.inf),
                                                 ("camera_to_world", (1, 0, 0), 3.0), ("fps", None, math.nan)])
def test_nan_or_degenerate_cameras_are_never_written(good, tmp_path, field, index, value):
    """The writer refuses what the reader would (nothing written; an earlier bundle at the path stays)."""
    recon = synthetic_reconstruction(num_frames=4, size=(24, 32))
    if index is None:
        setattr(recon, field, value)
    else:
        getattr(recon, field)[index] = value
    shutil.copytree(good, tmp_path / "bundle")
    before = snapshot(tmp_path)
    with pytest.raises(EngineInputError) as info:
        write_bundle(recon, tmp_path / "bundle")
    assert "the reconstruction" in info.value.problem and info.value.fix
    assert_unchanged(tmp_path, before)


def test_nan_in_metadata_is_written_as_null(tmp_path):
    recon = synthetic_reconstruction(num_frames=2, size=(8, 8))
    recon.metadata = {"alignment": {"residual": math.nan, "scales": [1.0, math.inf]}}
    text = (write_bundle(recon, tmp_path / "bundle") / "scene.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["metadata"] == {"alignment": {"residual": None, "scales": [1.0, None]}}
