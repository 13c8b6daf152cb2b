"""Helpers of the add-on tests: the real clip's path and scripts run in a fresh headless bpy session with its
own user folders (a clean Blender profile). The fixtures `addon_zip` (the built zip) and `clip` (a copy of the
clip) are in conftest.py.

A script runs in a subprocess so every test gets a new Blender; it reports by printing one line
`RESULT <json>`, which `run_bpy` returns parsed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fixture_paths import GEO4D_FIXTURES

ROOT = Path(__file__).resolve().parent.parent
CLIP = GEO4D_FIXTURES.parent.parent / "clips" / "drift-turn.mp4"  # real footage from the shared folder
EXTENSION = "bl_ext.user_default.parallax"

# Installs the zip given as argv[1] into the fresh profile and enables it; used as a prelude.
INSTALL = f"""
import json, os, sys, importlib
import bpy, addon_utils
result = {{}}
def report():
    print("RESULT " + json.dumps(result))
assert bpy.ops.extensions.package_install_files(filepath=sys.argv[1], repo="user_default",
                                                enable_on_install=True) == {{"FINISHED"}}
MOD = "{EXTENSION}"
prefs = bpy.context.preferences.addons[MOD].preferences
prefs.python_source = "CUSTOM"
prefs.python_path = sys.executable  # the test venv has the engine's requirements
"""


# For the engine processes the tests start: the tiny model gains nothing from more threads, and OpenMP's
# spin-waiting makes a run several times slower on a machine busy with other work.
ENGINE_ENV = dict(os.environ, OMP_NUM_THREADS="1")


def run_bpy(script: str, args: list[str], profile: Path, timeout: float = 300) -> dict:
    env = dict(ENGINE_ENV, BLENDER_USER_RESOURCES=str(profile))
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"bpy script failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][len("RESULT "):])


# After INSTALL: loads the clip given as argv[2] as the scene's active clip; defines snapshot() (what a failed
# run must leave unchanged) and reconstruct() (the operator, with its report), and takes `before`.
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
