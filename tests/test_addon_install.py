"""The built extension zip: manifest checks, contents, install + enable in a fresh Blender, engine lifecycle."""

import tomllib
import zipfile

import pytest

import build_addon
from tests.addon_session import INSTALL, run_bpy


def test_zip_holds_manifest_addon_engine_and_requirements(addon_zip):
    names = set(zipfile.ZipFile(addon_zip).namelist())
    assert addon_zip.name == "parallax-0.1.0.zip"
    assert {"blender_manifest.toml", "__init__.py", "engine_process.py", "engine/__main__.py",
            "engine/protocol/server.py", "requirements.txt"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    requirements = zipfile.ZipFile(addon_zip).read("requirements.txt").decode().split()
    assert any(r.startswith("torch") for r in requirements) and any(r.startswith("numpy") for r in requirements)
    manifest = tomllib.loads(zipfile.ZipFile(addon_zip).read("blender_manifest.toml").decode())
    assert manifest["id"] == "parallax" and manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) == {"files", "network"}


@pytest.mark.parametrize("change, message", [
    ({"version": "9.9.9"}, "differs from pyproject.toml"),
    ({"tagline": "A tagline that goes on and on for far longer than Blender allows it to."}, "64 characters"),
    ({"permissions": {"network": "Downloads."}}, "permission 'network'"),
])
def test_bad_manifest_is_refused_naming_the_problem(change, message):
    manifest = tomllib.loads((build_addon.ADDON / "blender_manifest.toml").read_text())
    manifest.update(change)
    with pytest.raises(build_addon.BuildError, match=message):
        build_addon.validate_manifest(manifest, "0.1.0")


LIFECYCLE = INSTALL + """
ep = importlib.import_module(MOD + ".engine_process")
result["enabled"] = addon_utils.check(MOD)[1]
result["operators"] = [hasattr(bpy.ops.parallax, name) for name in ("reconstruct", "cancel", "create_environment")]
result["operators"].append(hasattr(bpy.ops.import_scene, "parallax_bundle"))
result["operators"] += [hasattr(bpy.ops.parallax, name) for name in ("set_origin", "set_floor", "set_scale",
                                                                    "set_x_axis", "set_y_axis")]
result["panels"] = sorted(getattr(bpy.types, name).bl_space_type for name in ("PARALLAX_PT_clip", "PARALLAX_PT_view3d"))
result["setup_panels"] = sorted(getattr(bpy.types, name).bl_parent_id
                                for name in ("PARALLAX_PT_clip_setup", "PARALLAX_PT_view3d_setup",
                                             "PARALLAX_PT_clip_advanced", "PARALLAX_PT_view3d_advanced"))
result["engine_root"] = str(ep.engine_root())
result["extension_dir"] = os.path.dirname(importlib.import_module(MOD).__file__)
engine = ep.get_engine(prefs.python_path)
engine.send({"type": "ping", "id": "p"})
pong = engine.wait_event(60)
result["pong_pid_matches"] = pong["type"] == "pong" and pong["pid"] == engine.pid
result["same_engine_reused"] = ep.get_engine(prefs.python_path) is engine
pid = engine.pid
bpy.ops.preferences.addon_disable(module=MOD)
result["enabled_after_disable"] = addon_utils.check(MOD)[1]
result["engine_alive_after_disable"] = os.path.exists(f"/proc/{pid}")
# Without online access (the default here) creating the environment must refuse before any download.
bpy.ops.preferences.addon_enable(module=MOD)
try:
    bpy.ops.parallax.create_environment()
    result["create_env"] = "ran"
except RuntimeError as exc:
    result["create_env"] = str(exc)
report()
"""


def test_installs_enables_and_disabling_stops_the_engine(addon_zip, tmp_path):
    result = run_bpy(LIFECYCLE, [addon_zip], tmp_path / "profile")
    assert result["enabled"] and all(result["operators"])
    assert result["panels"] == ["CLIP_EDITOR", "VIEW_3D"]
    # Scene Setup and Advanced sub-panels
    assert result["setup_panels"] == ["PARALLAX_PT_clip"] * 2 + ["PARALLAX_PT_view3d"] * 2
    # The engine that runs is the one bundled in the extension, not the repository's.
    assert result["engine_root"] == result["extension_dir"]
    assert result["pong_pid_matches"] and result["same_engine_reused"]
    assert result["enabled_after_disable"] is False
    assert result["engine_alive_after_disable"] is False
    assert "Online access is disabled" in result["create_env"]
