"""The command line itself: the `parallax` console script, the same options as the add-on, checks that come before
the model loads, progress and the summary of a run."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from engine.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def _sub_commands(help_text: str) -> list[str]:
    """The sub-commands of a top-level --help: its `{a,b,...}` choice list."""
    return re.search(r"\{([a-z,-]+)\}", help_text).group(1).split(",")


def test_the_console_script_runs_the_same_commands_as_python_m_engine(tmp_path):
    """pip installs the package (from a copy: the build leaves nothing in the checkout) and writes the `parallax`
    script pyproject.toml names; its help lists every command, as `python -m engine`'s does."""
    pytest.importorskip("setuptools", reason="building the package needs setuptools (pyproject's build backend)")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"parallax": "engine.cli:main"}
    source = tmp_path / "source"
    shutil.copytree(ROOT / "engine", source / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", source)
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                              "--no-index", "--target", tmp_path / "site", source], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    script = tmp_path / "site" / "bin" / "parallax"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "site")}
    installed = subprocess.run([script, "--help"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.startswith("usage: parallax ")
    module = subprocess.run([sys.executable, "-m", "engine", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert module.stdout.startswith("usage: python -m engine ")  # each names the command the user typed
    assert _sub_commands(installed.stdout) == _sub_commands(module.stdout) == list(COMMANDS)
    # A sub-command's own help comes from the same parser.
    sub = subprocess.run([script, "align", "--help"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert sub.returncode == 0 and sub.stdout.startswith("usage: parallax align ")
    assert "--per-frame-focal" in sub.stdout
