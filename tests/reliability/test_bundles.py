"""Reliability battery, area "bundles": where outputs may go and what a bundle may name.

- `--out` replaces only a folder Parallax wrote (its marker AND nothing the format does not name), through
  every command that writes one: align, reconstruct, serve, convert, download (issue 9, defect 1);
- no input may lie inside `--out` (defect 2);
- every file a bundle or a windows folder names resolves inside it, symbolic links included (defect 5), in
  the engine's readers and so in the add-on's import, which reads through them;
- malformed scene.json files are one clear error, never a traceback.
Each case checks the outcome and that nothing else changed (tests/reliability/conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.errors import InputError
from engine.formats.bundle import read_bundle
from engine.windows.predictions import load_windows
from tests.reliability.conftest import (assert_clear_error, assert_unchanged, run_main, snapshot)
from tests.reliability.made import copy_tree, make_bundle, make_windows
from tests.needs import torch_or_skip


@pytest.fixture(scope="module")
def windows(tmp_path_factory) -> Path:
    return make_windows(tmp_path_factory.mktemp("windows") / "windows")


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory, windows) -> Path:
    """A bundle written by `align`; cases copy it before changing anything."""
    return make_bundle(tmp_path_factory.mktemp("good") / "bundle", windows)


def _scene(bundle: Path) -> dict:
    return json.loads((bundle / "scene.json").read_text())


def _write_scene(bundle: Path, scene) -> None:
    (bundle / "scene.json").write_text(json.dumps(scene))


def _align(windows: Path, out: Path):
    return run_main("align", windows, "--out", out, "--point-stride", "4")


def _assert_no_leftovers(folder: Path) -> None:
    hidden = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert not hidden, f"staging or old folders left: {hidden}"


# Defect 1: foreign folders at --out are refused, never deleted.

def _foreign_scene_json(out: Path, good: Path) -> None:
    out.mkdir()
    (out / "scene.json").write_text('{"camera": "my own scene description"}')
    (out / "thesis.pdf").write_bytes(b"%PDF-1.4 years of work")


def _bundle_with_notes(out: Path, good: Path) -> None:
    copy_tree(good, out)
    (out / "notes.txt").write_text("shot notes")


def _bundle_with_subfolder(out: Path, good: Path) -> None:
    copy_tree(good, out)
    (out / "renders").mkdir()
    (out / "renders" / "beauty.0001.exr").write_bytes(b"plate")


def _bundle_with_empty_folder(out: Path, good: Path) -> None:
    copy_tree(good, out)
    (out / "comp").mkdir()


def _bundle_with_extra_depth_file(out: Path, good: Path) -> None:
    copy_tree(good, out)
    (out / "depth" / "painted_000003.exr").write_bytes(b"hand-painted depth")


def _bundle_with_extra_windows_file(out: Path, good: Path) -> None:
    copy_tree(good, out)
    (out / "windows" / "README.txt").write_text("mine")


def _scene_naming_a_foreign_file(out: Path, good: Path) -> None:
    copy_tree(good, out)
    (out / "thesis.pdf").write_bytes(b"%PDF")
    scene = _scene(out)
    scene["frames"][0]["depth"] = "thesis.pdf"  # a forged name does not make the file Parallax's
    _write_scene(out, scene)


def _wrong_format_marker(out: Path, good: Path) -> None:
    copy_tree(good, out)
    scene = _scene(out)
    scene["format"] = "someone.else"
    _write_scene(out, scene)


def _no_format_marker(out: Path, good: Path) -> None:
    copy_tree(good, out)
    scene = _scene(out)
    del scene["format"]
    _write_scene(out, scene)


def _scene_json_not_json(out: Path, good: Path) -> None:
    copy_tree(good, out)
    (out / "scene.json").write_text("{ this is not json")


def _scene_json_a_list(out: Path, good: Path) -> None:
    copy_tree(good, out)
    (out / "scene.json").write_text("[1, 2, 3]")


def _scene_json_deeply_nested(out: Path, good: Path) -> None:
    copy_tree(good, out)
    (out / "scene.json").write_text("[" * 100000 + "]" * 100000)


def _folder_without_scene_json(out: Path, good: Path) -> None:
    out.mkdir()
    (out / "plate.0001.exr").write_bytes(b"plate")


def _a_file(out: Path, good: Path) -> None:
    out.write_text("an artist's file")


def _symlinked_depth_folder(out: Path, good: Path) -> None:
    copy_tree(good, out)
    foreign = out.parent / "library"
    shutil.copytree(out / "depth", foreign)
    (foreign / "keep.txt").write_text("never delete me")
    shutil.rmtree(out / "depth")
    (out / "depth").symlink_to(foreign)


def _a_link_to_a_bundle(out: Path, good: Path) -> None:
    copy_tree(good, out.parent / "real")
    out.symlink_to(out.parent / "real")


def _scene_json_is_a_folder(out: Path, good: Path) -> None:
    out.mkdir()
    (out / "scene.json").mkdir()
    (out / "scene.json" / "mine.txt").write_text("x")


FOREIGN = [_foreign_scene_json, _bundle_with_notes, _bundle_with_subfolder, _bundle_with_empty_folder,
           _bundle_with_extra_depth_file, _bundle_with_extra_windows_file, _scene_naming_a_foreign_file,
           _wrong_format_marker, _no_format_marker, _scene_json_not_json, _scene_json_a_list,
           _scene_json_deeply_nested, _folder_without_scene_json, _a_file, _symlinked_depth_folder,
           _a_link_to_a_bundle, _scene_json_is_a_folder]


@pytest.mark.parametrize("make", FOREIGN, ids=lambda f: f.__name__.strip("_"))
def test_align_refuses_to_replace_a_folder_parallax_did_not_write(make, windows, good_bundle, tmp_path):
    out = tmp_path / "out"
    make(out, good_bundle)
    before = snapshot(tmp_path)
    message = assert_clear_error(_align(windows, out), str(out))
    assert "new or empty folder" in message or "not a folder" in message
    assert_unchanged(tmp_path, before)


@pytest.mark.parametrize("make", [_foreign_scene_json, _bundle_with_notes, _scene_naming_a_foreign_file,
                                  _folder_without_scene_json], ids=lambda f: f.__name__.strip("_"))
def test_reconstruct_refuses_a_foreign_out_before_the_model_loads(make, good_bundle, clip, tmp_path):
    torch_or_skip()  # the command loads torch before it gets to this check
    out = tmp_path / "out"
    make(out, good_bundle)
    before = snapshot(tmp_path)
    # No model is installed at --model-dir: the refusal comes first.
    result = run_main("reconstruct", clip, "--out", out, "--model-dir", tmp_path / "no-model")
    assert_clear_error(result, str(out), "Parallax replaces only a folder it wrote")
    assert_unchanged(tmp_path, before)


def test_the_error_names_the_files_parallax_did_not_write(windows, good_bundle, tmp_path):
    out = tmp_path / "out"
    _bundle_with_subfolder(out, good_bundle)
    (out / "notes.txt").write_text("x")
    message = assert_clear_error(_align(windows, out))
    assert "notes.txt" in message and "renders/" in message and "move those out" in message


def _model_dir(out: Path, extra: dict[str, bytes] | None = None, manifest: dict | str | None = None) -> None:
    """A folder shaped like a converted model directory (the files' contents do not matter here)."""
    from engine.models.geo4d.model_dir import MANIFEST_FILES

    out.mkdir()
    for name in MANIFEST_FILES:
        (out / name).write_bytes(b"weights")
    manifest = {"model": "geo4d", "format_version": 1, "files": {}} if manifest is None else manifest
    (out / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    for name, data in (extra or {}).items():
        (out / name).write_bytes(data)


@pytest.mark.parametrize("extra, manifest", [
    ({"thesis.pdf": b"%PDF"}, None),
    ({"model.ckpt": b"the source checkpoint"}, None),
    ({}, {"model": "other", "files": {}}),
    ({}, {"model": "geo4d"}),
    ({}, "not json"),
    ({}, "[" * 50000 + "]" * 50000),
], ids=["extra-file", "checkpoint-inside", "other-model", "no-files-table", "not-json", "deeply-nested"])
def test_convert_refuses_a_foreign_model_directory_before_loading_checkpoints(extra, manifest, tmp_path):
    torch_or_skip()  # the command loads torch before it gets to this check
    out = tmp_path / "models"
    _model_dir(out, extra, manifest)
    before = snapshot(tmp_path)
    result = run_main("convert", "geo4d", "--model-ckpt", tmp_path / "none.ckpt", "--vae-ckpt",
                      tmp_path / "none-vae.ckpt", "--out", out)
    assert_clear_error(result, str(out), "Parallax replaces only a folder it wrote")
    assert_unchanged(tmp_path, before)


@pytest.mark.parametrize("command", [
    ["convert", "geo4d", "--model-ckpt", "a.ckpt", "--vae-ckpt", "b.ckpt"],
    # The mirror is a closed port: had the command tried to download, it would say so instead.
    ["download", "geo4d", "--accept-licences", "--download-dir", "dl", "--mirror", "http://127.0.0.1:9"],
], ids=["convert", "download"])
def test_a_project_folder_with_its_own_manifest_json_is_refused(command, tmp_path, monkeypatch):
    torch_or_skip()  # the command loads torch before it gets to this check
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "models"
    out.mkdir()
    (out / "manifest.json").write_text('{"my": "project manifest"}')
    (out / "src.py").write_text("print('mine')")
    before = snapshot(tmp_path)
    result = run_main(*command, "--out", out)
    assert_clear_error(result, str(out), "is not a converted Geo4D model directory")
    assert_unchanged(tmp_path, before)


def test_a_parallax_bundle_is_replaced_and_leaves_nothing_behind(windows, good_bundle, tmp_path):
    out = copy_tree(good_bundle, tmp_path / "out")
    before = snapshot(out)
    scene = _scene(out)
    scene["metadata"]["marker"] = "old"
    _write_scene(out, scene)
    assert _align(windows, out).returncode == 0
    assert "marker" not in _scene(out)["metadata"]
    assert snapshot(out).keys() == before.keys()
    _assert_no_leftovers(tmp_path)


def test_an_empty_folder_is_accepted(windows, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert _align(windows, out).returncode == 0
    assert read_bundle(out).frames


def test_os_clutter_does_not_stop_a_replacement(windows, good_bundle, tmp_path):
    out = copy_tree(good_bundle, tmp_path / "out")
    (out / ".DS_Store").write_bytes(b"\0")
    (out / "depth" / "Thumbs.db").write_bytes(b"\0")
    assert _align(windows, out).returncode == 0


def test_a_bundle_without_the_generator_field_is_still_replaced(windows, good_bundle, tmp_path):
    """Bundles written before the `generator` field: the format marker and the file names decide."""
    out = copy_tree(good_bundle, tmp_path / "out")
    scene = _scene(out)
    del scene["generator"]
    _write_scene(out, scene)
    assert _align(windows, out).returncode == 0
    assert _scene(out)["generator"].startswith("parallax ")


def _legacy_bundle(good: Path, out: Path) -> Path:
    """A copy of `good` shaped as bundles were before 2026-12-02: predictions in one windows.npz."""
    out = copy_tree(good, out)
    shutil.rmtree(out / "windows")
    (out / "windows.npz").write_bytes(b"old predictions")
    scene = _scene(out)
    scene["windows"] = "windows.npz"
    _write_scene(out, scene)
    return out


def test_a_legacy_bundle_with_windows_npz_is_replaced(windows, good_bundle, tmp_path):
    out = _legacy_bundle(good_bundle, tmp_path / "out")
    assert _align(windows, out).returncode == 0
    assert not (out / "windows.npz").exists() and (out / "windows" / "windows.json").is_file()


def test_a_bundle_without_windows_is_replaced(windows, good_bundle, tmp_path):
    out = copy_tree(good_bundle, tmp_path / "out")
    shutil.rmtree(out / "windows")
    scene = _scene(out)
    scene["windows"] = None
    _write_scene(out, scene)
    assert _align(windows, out).returncode == 0


def test_the_refusal_comes_before_the_window_predictions_are_read(tmp_path, good_bundle):
    """A foreign --out is named even when the input is also bad: outputs are checked first, cheaply."""
    out = tmp_path / "out"
    _bundle_with_notes(out, good_bundle)
    assert_clear_error(_align(tmp_path / "missing-windows", out), "notes.txt")


# Defect 2: no input inside --out.

def test_reconstruct_refuses_a_clip_inside_its_out_bundle(good_bundle, clip, tmp_path):
    torch_or_skip()  # the command loads torch before it gets to this check
    out = copy_tree(good_bundle, tmp_path / "B")
    shot = Path(shutil.move(clip, out / "shot.mp4"))
    before = snapshot(tmp_path)
    result = run_main("reconstruct", shot, "--out", out, "--model-dir", tmp_path / "no-model")
    assert_clear_error(result, "shot.mp4")
    assert_unchanged(tmp_path, before)
    assert shot.is_file()


def test_reconstruct_refuses_an_image_sequence_that_is_part_of_out(good_bundle, tmp_path):
    """The bundle's own depth EXRs as the clip: every file is one the format names, so only the input
    check stands between the command and deleting its own input."""
    torch_or_skip()  # the command loads torch before it gets to this check
    out = copy_tree(good_bundle, tmp_path / "B")
    before = snapshot(tmp_path)
    result = run_main("reconstruct", out / "depth", "--out", out, "--model-dir", tmp_path / "no-model")
    assert_clear_error(result, "clip", "lies inside the output folder")
    assert_unchanged(tmp_path, before)


def test_reconstruct_refuses_the_clip_as_out(clip, tmp_path):
    torch_or_skip()  # the command loads torch before it gets to this check
    before = snapshot(tmp_path)
    result = run_main("reconstruct", clip, "--out", clip, "--model-dir", tmp_path / "no-model")
    assert_clear_error(result, "not a folder")
    assert_unchanged(tmp_path, before)


def test_reconstruct_refuses_a_model_directory_inside_out(clip, tmp_path):
    torch_or_skip()  # the command loads torch before it gets to this check
    out = tmp_path / "B"
    out.mkdir()
    before = snapshot(tmp_path)
    result = run_main("reconstruct", clip, "--out", out, "--model-dir", out / "geo4d")
    assert_clear_error(result, "model directory", "lies inside the output folder")
    assert_unchanged(tmp_path, before)


def test_reconstruct_refuses_a_clip_reached_through_a_link_into_out(good_bundle, tmp_path):
    torch_or_skip()  # the command loads torch before it gets to this check
    out = copy_tree(good_bundle, tmp_path / "B")
    (tmp_path / "frames").symlink_to(out / "depth")
    before = snapshot(tmp_path)
    result = run_main("reconstruct", tmp_path / "frames", "--out", out, "--model-dir", tmp_path / "no-model")
    assert_clear_error(result, "lies inside the output folder")
    assert_unchanged(tmp_path, before)


def test_align_refuses_the_out_folder_itself_as_input(good_bundle, tmp_path):
    out = copy_tree(good_bundle, tmp_path / "B")
    before = snapshot(tmp_path)
    assert_clear_error(_align(out, out), "window predictions", "lies inside the output folder")
    assert_unchanged(tmp_path, before)


def test_align_refuses_a_legacy_windows_npz_inside_out(good_bundle, tmp_path):
    out = _legacy_bundle(good_bundle, tmp_path / "B")
    before = snapshot(tmp_path)
    assert_clear_error(_align(out / "windows.npz", out), "lies inside the output folder")
    assert_unchanged(tmp_path, before)


def test_align_may_realign_a_bundle_from_its_own_windows(good_bundle, tmp_path):
    """The one input allowed inside --out: the bundle's own windows folder, whose data the new bundle carries."""
    out = copy_tree(good_bundle, tmp_path / "B")
    pointmap = np.load(out / "windows" / "pointmap.npy")
    result = run_main("align", out / "windows", "--out", out, "--per-frame-focal", "on")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(load_windows(out / "windows").pointmap, pointmap)
    _assert_no_leftovers(tmp_path)


def test_convert_refuses_a_config_inside_out(tmp_path):
    torch_or_skip()  # the command loads torch before it gets to this check
    out = tmp_path / "models"
    _model_dir(out)
    before = snapshot(tmp_path)
    result = run_main("convert", "geo4d", "--model-ckpt", tmp_path / "m.ckpt", "--vae-ckpt", tmp_path / "v.ckpt",
                      "--config", out / "config.json", "--out", out)
    assert_clear_error(result, "config", "lies inside the output folder")
    assert_unchanged(tmp_path, before)


def test_download_refuses_a_download_folder_inside_out(tmp_path):
    torch_or_skip()  # the command loads torch before it gets to this check
    out = tmp_path / "models"
    out.mkdir()
    before = snapshot(tmp_path)
    result = run_main("download", "geo4d", "--accept-licences", "--download-dir", out / "dl", "--out", out,
                      "--mirror", "http://127.0.0.1:9")
    assert_clear_error(result, "download folder", "lies inside the output folder")
    assert_unchanged(tmp_path, before)


# Defect 5: every file a bundle or a windows folder names lies inside it.

def _link_out(folder: Path, name: str, outside: Path) -> None:
    """Move folder/name to outside/name and leave a symbolic link to it in its place."""
    shutil.move(folder / name, outside / Path(name).name)
    (folder / name).symlink_to(outside / Path(name).name)


def _frame_entry(bundle: Path, key: str, name) -> None:
    scene = _scene(bundle)
    scene["frames"][0][key] = name
    _write_scene(bundle, scene)


@pytest.mark.parametrize("key", ["depth", "points", "matte"])
@pytest.mark.parametrize("name", ["../secret.bin", "../../../../../../etc/passwd", "/etc/passwd",
                                  "depth/../../secret.bin", "", ".", 7, None],
                         ids=["parent", "deep-parent", "absolute", "back-out", "empty", "the-bundle", "number",
                              "null"])
def test_read_bundle_refuses_a_name_outside_the_bundle(key, name, good_bundle, tmp_path):
    bundle = copy_tree(good_bundle, tmp_path / "bundle")
    (tmp_path / "secret.bin").write_bytes(b"secret")
    _frame_entry(bundle, key, name)
    with pytest.raises(InputError) as info:
        read_bundle(bundle)
    assert info.value.fix


@pytest.mark.parametrize("key", ["depth", "points", "matte"])
def test_read_bundle_refuses_a_file_linked_out_of_the_bundle(key, good_bundle, tmp_path):
    bundle = copy_tree(good_bundle, tmp_path / "bundle")
    _link_out(bundle, _scene(bundle)["frames"][3][key], tmp_path)
    with pytest.raises(InputError, match="through a symbolic link"):
        read_bundle(bundle)


def test_read_bundle_refuses_a_folder_linked_out_of_the_bundle(good_bundle, tmp_path):
    bundle = copy_tree(good_bundle, tmp_path / "bundle")
    _link_out(bundle, "points", tmp_path)
    with pytest.raises(InputError, match="through a symbolic link"):
        read_bundle(bundle)


@pytest.mark.parametrize("key", ["depth", "points", "matte"])
@pytest.mark.parametrize("kind", ["pipe", "folder"])
def test_read_bundle_refuses_a_named_file_that_is_no_regular_file(kind, key, good_bundle, tmp_path):
    """A named pipe would make the importer wait forever for data."""
    bundle = copy_tree(good_bundle, tmp_path / "bundle")
    name = bundle / _scene(bundle)["frames"][2][key]
    name.unlink()
    os.mkfifo(name) if kind == "pipe" else name.mkdir()
    with pytest.raises(InputError, match="not a regular file"):
        read_bundle(bundle)


def test_load_windows_refuses_a_pipe_in_place_of_a_map(windows, tmp_path):
    folder = copy_tree(windows, tmp_path / "windows")
    (folder / "disparity.npy").unlink()
    os.mkfifo(folder / "disparity.npy")
    with pytest.raises(InputError, match="not a regular file"):
        load_windows(folder)


def test_read_bundle_accepts_links_and_dot_dots_that_stay_inside(good_bundle, tmp_path):
    bundle = copy_tree(good_bundle, tmp_path / "bundle")
    scene = _scene(bundle)
    scene["frames"][0]["depth"] = "points/../depth/000000.exr"
    (bundle / "depth" / "000001.exr").unlink()
    (bundle / "depth" / "000001.exr").symlink_to(bundle / "depth" / "000002.exr")
    _write_scene(bundle, scene)
    read = read_bundle(bundle)
    assert read.frames[0].depth_path.resolve() == (bundle / "depth" / "000000.exr").resolve()
    assert len(read.points(0)) == read.frames[0].num_points


def test_a_bundle_reached_through_a_link_reads(good_bundle, tmp_path):
    (tmp_path / "link").symlink_to(good_bundle)
    assert len(read_bundle(tmp_path / "link").frames) == len(read_bundle(good_bundle).frames)


@pytest.mark.parametrize("name", ["windows.json", "pointmap.npy", "pointmap_conf.npy", "disparity.npy",
                                  "ray_dirs.npy", "ray_moments.npy", "rgb.npy"])
def test_load_windows_refuses_a_file_linked_out_of_the_folder(name, windows, tmp_path):
    folder = copy_tree(windows, tmp_path / "windows")
    _link_out(folder, name, tmp_path)
    with pytest.raises(InputError, match="outside"):
        load_windows(folder)


def test_align_refuses_windows_linked_out_of_their_folder_with_a_clear_error(windows, tmp_path):
    folder = copy_tree(windows, tmp_path / "windows")
    _link_out(folder, "pointmap.npy", tmp_path)
    before = snapshot(tmp_path)
    assert_clear_error(_align(folder, tmp_path / "out"), "pointmap.npy", "outside")
    assert_unchanged(tmp_path, before)


def test_a_windows_folder_reached_through_a_link_loads(windows, tmp_path):
    (tmp_path / "link").symlink_to(windows)
    assert load_windows(tmp_path / "link").num_windows == load_windows(windows).num_windows


# Malformed scene.json: one clear error each.

@pytest.mark.parametrize("change", [
    lambda s: "[" * 100000 + "]" * 100000,
    lambda s: [s],
    lambda s: {**s, "version": "one"},
    lambda s: {**s, "version": 99},
    lambda s: {**s, "frames": "all of them"},
    lambda s: {**s, "frames": []},
    lambda s: {**s, "frames": [{"frame": 0}]},
    lambda s: {**s, "image_size": [1]},
    lambda s: {**s, "fps": "fast"},
    lambda s: {**s, "frames": [{**s["frames"][0], "K": [[1, 0], [0, 1]]}]},
    lambda s: {**s, "format": ["parallax.bundle"]},
], ids=["deeply-nested", "a-list", "version-text", "version-newer", "frames-text", "no-frames", "frame-lacks-keys",
        "image-size", "fps-text", "K-shape", "format-list"])
def test_read_bundle_refuses_a_malformed_scene_json(change, good_bundle, tmp_path):
    bundle = copy_tree(good_bundle, tmp_path / "bundle")
    changed = change(_scene(bundle))
    (bundle / "scene.json").write_text(changed if isinstance(changed, str) else json.dumps(changed))
    before = snapshot(tmp_path)
    with pytest.raises(InputError) as info:
        read_bundle(bundle)
    assert info.value.fix
    assert_unchanged(tmp_path, before)


def test_import_in_blender_refuses_a_bundle_naming_an_outside_file(good_bundle, tmp_path):
    """The add-on reads bundles through read_bundle: the traversal is refused there, with the scene as before."""
    bpy = pytest.importorskip("bpy")
    from blender_addon.errors import InputError as AddonInputError  # the engine's, through the add-on's one door
    from blender_addon.importer.bundle_import import import_bundle

    bundle = copy_tree(good_bundle, tmp_path / "bundle")
    _frame_entry(bundle, "depth", os.path.abspath("/etc/passwd"))
    objects = len(bpy.data.objects)
    with pytest.raises(AddonInputError, match="outside"):
        import_bundle(bpy.context, bundle)
    assert len(bpy.data.objects) == objects


# `demo --out` overwrites its clip and metrics in place: the same rule as for bundles.

def _demo_folder(out: Path, good: Path, extra: str | None = None) -> Path:
    out.mkdir()
    copy_tree(good, out / "bundle")
    (out / "clip.mp4").write_bytes(b"rendered demo clip")
    (out / "metrics.json").write_text("{}")
    if extra:
        (out / extra).write_text("mine")
    return out


@pytest.mark.parametrize("files", [{"clip.mp4": b"the client's plate"}, {"metrics.json": b"{}", "notes.txt": b"x"},
                                   {"bundle": None}],
                         ids=["a-clip", "metrics-and-notes", "an-empty-bundle-folder"])
def test_demo_refuses_a_folder_it_did_not_write(files, tmp_path):
    out = tmp_path / "project"
    out.mkdir()
    for name, data in files.items():
        (out / name).mkdir() if data is None else (out / name).write_bytes(data)
    before = snapshot(tmp_path)
    assert_clear_error(run_main("demo", "--out", out), "is not a Parallax demo folder")
    assert_unchanged(tmp_path, before)


def test_demo_refuses_an_earlier_demo_holding_other_files(good_bundle, tmp_path):
    out = _demo_folder(tmp_path / "demo", good_bundle, extra="notes.txt")
    before = snapshot(tmp_path)
    assert_clear_error(run_main("demo", "--out", out), "notes.txt")
    assert_unchanged(tmp_path, before)


def test_demo_may_overwrite_an_earlier_demo(good_bundle, tmp_path):
    from engine.commands.demo import demo_files
    from engine.paths import check_replaceable

    out = _demo_folder(tmp_path / "demo", good_bundle)
    assert check_replaceable(out, "Parallax demo folder", demo_files) == out


def test_a_model_directory_with_its_onnx_cache_may_be_replaced(tmp_path):
    """ONNX Runtime exports its graphs into the model directory's onnx/ on first use: still Parallax's."""
    torch_or_skip()  # the model directory's module writes safetensors through torch
    from engine.models.geo4d.model_dir import check_model_target

    out = tmp_path / "models"
    _model_dir(out)
    (out / "onnx").mkdir()
    for name in ("unet-float32.onnx", "unet-float32.json", "unet-float32.onnx.data", ".export-k2j3/x"):
        (out / "onnx" / name).parent.mkdir(parents=True, exist_ok=True)
        (out / "onnx" / name).write_bytes(b"graph")
    assert check_model_target(out, {}) == out
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="notes.txt"):
        check_model_target(out, {})


@pytest.mark.slow
def test_convert_replaces_a_model_directory_it_wrote(tiny_checkpoints, tiny_model_dir, tmp_path):
    out = copy_tree(tiny_model_dir, tmp_path / "geo4d")
    (out / "onnx").mkdir()
    (out / "onnx" / "unet-float32.onnx").write_bytes(b"a stale export")
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["generator"]  # as converted before the generator field
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = run_main("convert", "geo4d", "--model-ckpt", tiny_checkpoints.model, "--vae-ckpt", tiny_checkpoints.vae,
                      "--config", tiny_checkpoints.config, "--dtype", "fp32", "--out", out)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "manifest.json").read_text())["generator"].startswith("parallax ")
    assert not (out / "onnx").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["geo4d"]


@pytest.mark.parametrize("out", ["/", ".", "..", "~"], ids=["root", "cwd", "parent", "home"])
def test_align_refuses_everyday_folders_as_out(out, windows, tmp_path, monkeypatch):
    """`--out .` in a project folder, `--out ~`: refused, never emptied."""
    project = tmp_path / "project" / "shots"
    project.mkdir(parents=True)
    (project / "plate.0001.exr").write_bytes(b"plate")
    (tmp_path / "project" / "edit.blend").write_bytes(b"blend")
    monkeypatch.chdir(project)
    monkeypatch.setenv("HOME", str(tmp_path / "project"))
    before = snapshot(tmp_path)
    assert_clear_error(_align(windows, Path(out)), "new or empty folder")
    assert_unchanged(tmp_path, before)
