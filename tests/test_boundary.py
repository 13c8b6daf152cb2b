"""The Blender side of the boundary: every add-on module and engine.formats import, and the add-on registers,
in a Python where torch, scipy, cv2 and OpenEXR cannot be imported (Blender's has none of them); the engine's
error classes exist once, under one name."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("bpy")

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("torch", "scipy", "cv2", "OpenEXR")

SCRIPT = f"""
import importlib, pkgutil, sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # `import name` now raises ImportError
import bpy
import blender_addon, engine.formats
modules = [info.name for package in (blender_addon, engine.formats)
           for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in modules:
    importlib.import_module(name)
blender_addon.register()
blender_addon.unregister()
import engine.errors
from blender_addon import engine_link, errors
assert errors.InputError is engine.errors.InputError is engine_link.InputError
assert errors.EngineError is engine.errors.EngineError
assert issubclass(errors.FloorNotFound, engine.errors.InputError)
loaded = sorted(name for name in sys.modules if name.split(".")[0] in {BLOCKED!r} and sys.modules[name] is not None)
assert not loaded, loaded
print("imported", len(modules), "modules")
"""


def test_addon_and_formats_import_without_torch_scipy_cv2_openexr():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    count = int(result.stdout.split("imported ")[1].split()[0])
    assert count >= 20, result.stdout  # every add-on module and every format, not an empty walk


def test_a_blocked_package_is_really_refused():
    """The blocking above is real: an engine module that needs OpenCV fails to import under it."""
    code = "import sys; sys.modules['cv2'] = None; import engine.clips.video"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "cv2" in result.stderr
