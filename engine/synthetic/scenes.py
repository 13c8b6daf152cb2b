"""Synthetic scenes with exact ground truth, rendered by Blender in a subprocess and cached.

The engine never imports bpy: `load_scene` runs `python -m harness.render_scene` (the repository's
`harness/` folder) with this same interpreter, which must have bpy (the test venv does), and caches the
result under `.cache/scenes/`, keyed by the parameters and by the harness sources, so a changed scene is
rendered again.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from ..errors import EngineError, InputError
from .groundtruth import GroundTruth

SCENE_NAMES = ("static", "moving_objects", "zoom", "street", "rotation")
TEST_SCENE_NAMES = ("plane",)  # a tilted plane and a box: analytic depth for the harness's own tests

REPO_ROOT = Path(__file__).resolve().parents[2]
HARNESS = REPO_ROOT / "harness"
DEFAULT_CACHE = REPO_ROOT / ".cache" / "scenes"


def _harness_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(HARNESS.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def load_scene(name: str, num_frames: int = 48, size: tuple[int, int] = (160, 256), samples: int = 8,
               cache_dir: str | Path | None = None) -> GroundTruth:
    """The ground truth of scene `name`: num_frames frames of size (H, W), rendered once, then cached."""
    if name not in SCENE_NAMES + TEST_SCENE_NAMES:
        raise InputError(f"unknown synthetic scene '{name}'", f"use one of: {', '.join(SCENE_NAMES)}")
    if num_frames < 1 or min(size) < 8:
        raise InputError(f"cannot render {num_frames} frames of {size[0]}x{size[1]}",
                         "ask for at least 1 frame of at least 8x8 pixels")
    if not (HARNESS / "render_scene.py").is_file():
        raise EngineError(f"the scene renderer {HARNESS / 'render_scene.py'} is missing (this engine is not in a "
                          "Parallax source checkout)", "run synthetic scenes from a clone of the Parallax repository")
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    path = cache / f"{name}-{num_frames}f-{size[0]}x{size[1]}-{samples}spp-{_harness_digest()}.npz"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"[scenes] rendering '{name}' with Blender: {num_frames} frames at {size[0]}x{size[1]} -> {path}",
              file=sys.stderr, flush=True)
        cmd = [sys.executable, "-m", "harness.render_scene", "--scene", name, "--frames", str(num_frames),
               "--size", str(size[0]), str(size[1]), "--samples", str(samples), "--out", str(path)]
        done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
        if done.returncode != 0 or not path.is_file():
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise EngineError(f"rendering scene '{name}' with Blender failed (exit {done.returncode}):\n{tail}",
                              f"{sys.executable} needs bpy 5.0.1 (`scripts/setup_env.sh` installs it)")
    return GroundTruth.load(path)
