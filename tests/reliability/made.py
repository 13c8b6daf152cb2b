"""Small real outputs for the battery's cases: window predictions simulated from a synthetic scene with
known cameras, and the bundle `align` makes of them (the real writer, so the bundle is exactly what
Parallax writes)."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.synthetic.procedural import make_scene
from engine.synthetic.simulate import simulate_windows
from engine.windows.predictions import save_windows
from tests.reliability.conftest import run_main


def make_windows(folder: Path, frames: int = 20, size: tuple[int, int] = (24, 40)) -> Path:
    """A window-predictions folder of a static synthetic scene (2 windows for 20 frames at stride 4)."""
    return save_windows(simulate_windows(make_scene("static", frames, size), stride=4), folder)


def make_bundle(out: Path, windows: Path) -> Path:
    """The bundle `python -m engine align WINDOWS --out OUT` writes (asserting that it succeeds)."""
    result = run_main("align", windows, "--out", out, "--point-stride", "4")
    assert result.returncode == 0, result.stderr
    return out


def copy_tree(source: Path, target: Path) -> Path:
    """A copy a case may change, keeping links as links."""
    return Path(shutil.copytree(source, target, symlinks=True))
