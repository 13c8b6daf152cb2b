"""The Reconstruct operator in a fresh Blender with the installed extension: failures leave the scene as it was
and say why; the engine environment builder makes a working venv."""

import importlib.util
import shutil
import sys

import pytest

import build_addon
from tests.addon_session import INSTALL, run_bpy
from tests.fixture_paths import GEO4D_FIXTURES

CLIP = GEO4D_FIXTURES.parent.parent / "clips" / "drift-turn.mp4"

# Loads the clip given as argv[2], makes it the scene's active clip and defines snapshot() and reconstruct().
SCENE = INSTALL + """
clip = bpy.data.movieclips.load(sys.argv[2])
bpy.context.scene.active_clip = clip

def snapshot():
    scene = bpy.context.scene
    data = {name: sorted(x.name for x in getattr(bpy.data, name))
            for name in ("objects", "collections", "cameras", "meshes", "images", "node_groups", "actions")}
    data["scene"] = [scene.frame_start, scene.frame_end, scene.render.resolution_x, scene.render.resolution_y,
                     scene.render.fps, scene.camera.name if scene.camera else None]
    return data

def reconstruct():
    try:
        status = bpy.ops.parallax.reconstruct()
        return {"status": sorted(status), "message": bpy.context.window_manager.parallax_message}
    except RuntimeError as exc:
        return {"status": ["RAISED"], "message": str(exc)}

before = snapshot()
"""


@pytest.fixture(scope="module")
def addon_zip(tmp_path_factory):
    return build_addon.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture
def clip(tmp_path):
    return shutil.copy(CLIP, tmp_path / "shot.mp4")


def run_failure(addon_zip, clip, tmp_path, setup: str) -> dict:
    script = SCENE + setup + """
result.update(reconstruct())
result["unchanged"] = snapshot() == before
result["running"] = bpy.context.window_manager.parallax_running
report()
"""
    return run_bpy(script, [addon_zip, clip], tmp_path / "profile")


def test_missing_clip_file_is_reported_and_nothing_changes(addon_zip, clip, tmp_path):
    result = run_failure(addon_zip, clip, tmp_path, "os.remove(sys.argv[2])\n")
    assert result["status"] == ["RAISED"] and "does not exist" in result["message"]
    assert "relink the clip" in result["message"]
    assert result["unchanged"] and not result["running"]


def test_empty_frame_range_is_reported(addon_zip, clip, tmp_path):
    setup = ("s = bpy.context.scene.parallax; s.use_clip_range = False\n"
             "s.frame_start = 500; s.frame_end = 600\n")
    result = run_failure(addon_zip, clip, tmp_path, setup)
    assert "selects no frame" in result["message"] and result["unchanged"]


def test_killed_engine_is_reported_with_its_exit_code(addon_zip, clip, tmp_path):
    # An "interpreter" that is killed (SIGKILL) as soon as it starts: the engine dies without a word.
    dying = tmp_path / "dying-python"
    dying.write_text("#!/bin/sh\nkill -KILL $$\n")
    dying.chmod(0o755)
    result = run_failure(addon_zip, clip, tmp_path, f"prefs.python_path = {str(dying)!r}\n")
    assert result["status"] == ["RAISED"]
    assert "engine process stopped unexpectedly (exit code -9)" in result["message"]
    assert result["unchanged"] and not result["running"]


@pytest.mark.skipif(importlib.util.find_spec("engine.pipeline.reconstruct") is None,
                    reason="engine.pipeline.reconstruct has not landed")
def test_engine_python_without_requirements_is_named(addon_zip, clip, tmp_path):
    # A fresh environment made by the add-on's own builder, with no packages installed in it.
    setup = f"""
builder_mod = importlib.import_module(MOD + ".engine_env")
builder = builder_mod.EnvBuilder({sys._base_executable!r}, {str(tmp_path / 'env')!r}, []).start()
builder.join(300)
result["builder"] = [builder.state, builder.stage, builder.fraction]
prefs.python_path = str(builder_mod.env_python(builder.env_dir))
"""
    result = run_failure(addon_zip, clip, tmp_path, setup)
    assert result["builder"] == ["done", "ready", 1.0]
    assert "lacks the package 'numpy'" in result["message"] and "engine environment" in result["message"]
    assert result["unchanged"]
