"""Run a script in a fresh headless bpy session with its own user folders (a clean Blender profile).

The script runs in a subprocess so every test module gets a new Blender; it reports by printing
one line `RESULT <json>`, which `run_bpy` returns parsed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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


def run_bpy(script: str, args: list[str], profile: Path, timeout: float = 300) -> dict:
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(profile))
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"bpy script failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1][len("RESULT "):])
