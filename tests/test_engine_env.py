"""The one engine environment every Blender shares: found / broken / missing from real folders, and a real build
from this test's Python (3.11 or 3.13, whichever lane runs it) that then serves the add-on's handshake."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from blender_addon import engine_env
from blender_addon.engine_process import EngineProcess, engine_root
from tests.addon_session import INSTALL, run_bpy

REQUIREMENTS = ["numpy>=1.26"]


def fake_env(root: Path, version: str, requirements=REQUIREMENTS, python: str | None = sys.executable,
             marker: bool = True) -> Path:
    """An environment folder as the builder leaves it: bin/python (a link to a real interpreter) and its marker."""
    folder = root / f"engine-py{version}"
    (folder / "bin").mkdir(parents=True)
    if python is not None:
        (folder / "bin" / "python").symlink_to(python)
    if marker:
        made = {"base_python": python, "python": version, "requirements": requirements}
        (folder / engine_env.MARKER).write_text(json.dumps(made))
    return folder


def test_missing_then_found_whichever_python_made_it(tmp_path):
    status = engine_env.find_environment(tmp_path, REQUIREMENTS)
    assert status.state == "missing" and "Create Engine Environment" in status.fix
    # Made by another Blender's Python (3.11 in 4.2 to 5.0, 3.13 in 5.1 on): still this Blender's engine.
    other = "3.13" if sys.version_info[:2] == (3, 11) else "3.11"
    folder = fake_env(tmp_path, other)
    status = engine_env.find_environment(tmp_path, REQUIREMENTS)
    assert (status.state, status.env_dir, status.python) == ("found", folder, folder / "bin" / "python")


def test_the_newest_complete_environment_wins_and_broken_ones_say_how_to_fix_them(tmp_path):
    old = fake_env(tmp_path, "3.11")
    fake_env(tmp_path, "3.13", marker=False)  # interrupted build
    assert engine_env.find_environment(tmp_path, REQUIREMENTS).env_dir == old
    newer = fake_env(tmp_path, "3.14")
    assert engine_env.find_environment(tmp_path, REQUIREMENTS).env_dir == newer

    only_broken = tmp_path / "broken"
    fake_env(only_broken, "3.13", marker=False)
    status = engine_env.find_environment(only_broken, REQUIREMENTS)
    assert status.state == "broken" and "incomplete" in status.problem and "to finish it" in status.fix


@pytest.mark.parametrize("kwargs, problem, fix", [
    ({"marker": False}, "incomplete (its creation was interrupted or failed)", "to finish it"),
    ({"requirements": ["numpy<2"]}, "made for other engine requirements", "to update it"),
    ({"python": "/nonexistent/python3.11"}, "no longer runs", "to make it again"),
    ({"python": None}, "no longer runs", "to make it again"),
])
def test_broken_environments_are_named_with_the_fix(tmp_path, kwargs, problem, fix):
    folder = fake_env(tmp_path, "3.11", **kwargs)
    status = engine_env.check_environment(folder, REQUIREMENTS)
    assert status.state == "broken" and problem in status.problem and str(folder) in status.problem
    assert status.fix == f"{engine_env.CREATE_FIX} {fix}"


def test_base_python_too_old_or_missing_is_refused(tmp_path):
    with pytest.raises(engine_env.EngineUnavailable, match="cannot run the base Python"):
        engine_env.python_version(str(tmp_path / "python"))
    assert engine_env.python_version(sys.executable) == sys.version_info[:2]
    assert engine_env.env_dir(tmp_path, (3, 13)) == tmp_path / "engine-py3.13"


def test_data_root_is_per_user_not_per_blender(monkeypatch, tmp_path):
    monkeypatch.setenv("PARALLAX_DATA_DIR", str(tmp_path))
    assert engine_env.data_root() == tmp_path
    monkeypatch.delenv("PARALLAX_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    if sys.platform.startswith("linux"):
        assert engine_env.data_root() == tmp_path / "share" / "parallax"


def torch_free(requirements: list[str]) -> list[str]:
    return [r for r in requirements if re.match(r"[A-Za-z0-9._-]+", r).group().lower() != "torch"]


def test_build_from_this_python_then_serve_and_the_addon_finds_it(tmp_path, addon_zip):
    """Builds with the engine's requirements except torch (PyPI's torch for 3.13 is a multi-GB CUDA build), from
    whatever package source pip is configured with; the engine's server needs no torch to answer."""
    requirements = torch_free(engine_env.read_requirements(engine_root()))
    assert len(requirements) == len(engine_env.read_requirements(engine_root())) - 1
    target = engine_env.env_dir(tmp_path / "data", sys.version_info[:2])
    builder = engine_env.EnvBuilder(sys.executable, target, requirements).start()
    builder.join(900)
    assert builder.state == "done", builder.message
    status = engine_env.find_environment(tmp_path / "data", requirements)
    assert status.state == "found" and status.env_dir.name == f"engine-py{sys.version_info[0]}.{sys.version_info[1]}"
    numpy_major = subprocess.run([str(status.python), "-c", "import numpy; print(numpy.__version__)"],
                                 capture_output=True, text=True, check=True).stdout.split(".")[0]
    assert numpy_major == ("2" if sys.version_info >= (3, 13) else numpy_major)

    engine = EngineProcess(str(status.python))
    engine.start()
    try:
        engine.send({"type": "ping", "id": "p1"})
        pong = engine.wait_event(120)
    finally:
        engine.stop()
    assert pong is not None and pong["type"] == "pong" and pong["engine_version"] == "0.1.0", engine.stderr_tail()

    # The add-on in a fresh Blender profile (any Blender version) finds and uses that environment; its zip is
    # given the same torch-free requirements so the environment counts as up to date.
    script = INSTALL + """
os.environ["PARALLAX_DATA_DIR"] = sys.argv[2]
prefs.python_source = "ENV"
prefs_mod = importlib.import_module(MOD + ".preferences")
result["python"] = prefs_mod.engine_python()
result["status"] = prefs_mod.environment_status().state
result["check"] = sorted(bpy.ops.parallax.check_environment())
report()
"""
    result = run_bpy(script, [with_requirements(addon_zip, requirements, tmp_path), tmp_path / "data"],
                     tmp_path / "profile")
    assert result == {"python": str(status.python), "status": "found", "check": ["FINISHED"]}


def with_requirements(addon_zip: Path, requirements: list[str], folder: Path) -> Path:
    """A copy of the extension zip whose requirements.txt lists `requirements`."""
    out = folder / addon_zip.name
    with zipfile.ZipFile(addon_zip) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "requirements.txt":
                data = ("\n".join(requirements) + "\n").encode()
            target.writestr(item, data)
    return out


@pytest.mark.parametrize("platform, nvidia, args, words", [
    ("win32", True, ["--extra-index-url", "https://download.pytorch.org/whl/cu128"], "CUDA build (cu128)"),
    ("win32", False, [], "CPU build from PyPI"),
    ("linux", True, [], "CUDA build from PyPI"),
    ("linux", False, ["--extra-index-url", "https://download.pytorch.org/whl/cpu"], "CPU build"),
    ("darwin", False, [], "MPS"),
    ("darwin", True, [], "MPS"),
])
def test_the_pytorch_build_each_platform_gets(platform, nvidia, args, words):
    got, what = engine_env.torch_source(platform, nvidia)
    assert got == args and words in what

