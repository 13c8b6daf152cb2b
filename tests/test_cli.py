"""The command line itself: the `parallax` console script, the same options as the add-on, checks that come before
the model loads, progress and the summary of a run."""

import json
import os
import pty
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest

from engine.cli import COMMANDS
from tests.fixture_paths import GEO4D_FIXTURES
from tests.needs import torch_or_skip

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


CLIP = GEO4D_FIXTURES.parent.parent / "clips" / "drift-turn.mp4"  # 64 frames, 854x480


def _reconstruct(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "engine", "reconstruct", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _bogus_model_dir(folder: Path) -> Path:
    """A folder that looks like a converted Geo4D directory, but whose weight files are named pipes: reading one
    (to hash or load it) blocks forever, so a run that touches the weights times out."""
    from engine.models.geo4d.model_dir import MANIFEST_FILES

    folder.mkdir()
    for name in MANIFEST_FILES:
        os.mkfifo(folder / name)
    (folder / "manifest.json").write_text(json.dumps({"model": "geo4d", "files": {
        name: {"sha256": "0" * 64, "bytes": 1000} for name in MANIFEST_FILES}}))
    return folder


def test_a_bad_frame_range_is_named_before_the_model_is_touched(tmp_path):
    torch_or_skip()  # reconstruct's command imports it
    model_dir = _bogus_model_dir(tmp_path / "model")
    result = _reconstruct(CLIP, "--out", tmp_path / "bundle", "--model-dir", model_dir, "--frames", "70:80",
                          "--device", "cpu")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: frame range 70:80 gives zero frames: ") and "has 64 (0 to 63)" \
        in result.stderr and "fix: pass --frames A:B with A below 64" in result.stderr
    assert "loading model" not in result.stderr and not (tmp_path / "bundle").exists()
    # With a good range, the same folder is refused as a model directory, still before any weight is read.
    result = _reconstruct(CLIP, "--out", tmp_path / "bundle", "--model-dir", model_dir, "--frames", "10:20",
                          "--device", "cpu")
    assert result.returncode == 2 and "config.json is missing" in result.stderr, result.stderr
    assert "loading model" not in result.stderr


def test_a_bad_size_is_named_from_the_model_config_before_the_weights_load(tiny_model_dir, tmp_path):
    """The tiny model's UNet has 3 levels: sizes must be multiples of 32 (the released Geo4D's, 64), read from the
    model directory's config.json before the weights load."""
    result = _reconstruct(CLIP, "--out", tmp_path / "bundle", "--model-dir", tiny_model_dir, "--size", "48", "64",
                          "--device", "cpu")
    assert result.returncode == 2, result.stderr
    assert "processing size 48x64 is not a multiple of 32" in result.stderr
    assert "loading model" not in result.stderr and not (tmp_path / "bundle").exists()


def test_the_size_help_states_the_rule_the_check_applies():
    """One definition: the help of --size and of the add-on's size fields come from the models' size rules."""
    from engine.models import MODELS, size_rule, size_text

    assert {size_rule(name).multiple for name in MODELS} == {64}
    assert size_text() == "multiples of 64 (Geo4D, GeometryCrafter)"
    help_text = " ".join(subprocess.run([sys.executable, "-m", "engine", "reconstruct", "--help"], cwd=ROOT,
                                        capture_output=True, text=True).stdout.split())
    assert "processing size H W, multiples of 64 (Geo4D, GeometryCrafter)" in help_text
    properties = (ROOT / "blender_addon" / "properties.py").read_text()
    assert "multiple of 64" not in properties and properties.count("{size_text()}") == 2


def _run_on_a_terminal(command: list[str]) -> tuple[int, str, str]:
    """Run `command` with stderr on a pseudo-terminal (as in a shell) and stdout on a pipe: (code, stdout, the
    terminal's text)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    seen = []
    reader = threading.Thread(target=_read_all, args=(master, seen))
    reader.start()
    stdout = process.communicate(timeout=600)[0]
    reader.join(60)
    os.close(master)
    return process.returncode, stdout, b"".join(seen).decode()


def _read_all(fd: int, into: list) -> None:
    while True:
        try:
            block = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's last writer has gone
            return
        if not block:
            return
        into.append(block)


TINY_RUN = ["--size", "32", "64", "--frames", "3:20", "--stride", "4", "--steps", "2", "--device", "cpu"]


def test_a_run_on_a_terminal_shows_bars_and_ends_with_the_bundles_summary(tiny_model_dir, tmp_path):
    """17 frames in windows of 16 with stride 4: 2 windows. On a terminal each stage has a bar with the elapsed
    time and the time to go, the diffusion's counting windows; stdout gets the summary, which states what the
    bundle holds."""
    out = tmp_path / "bundle"
    code, stdout, terminal = _run_on_a_terminal([sys.executable, "-m", "engine", "reconstruct", str(CLIP), "--out",
                                                 str(out), "--model-dir", str(tiny_model_dir), *TINY_RUN])
    assert code == 0, terminal
    bars = terminal.replace("\r\n", "\n").split("\r")
    assert any(re.search(r"diffusion: .* window 1/2 \[\d\d:\d\d elapsed, [\d:?]+ to go\]", bar) for bar in bars)
    assert any(re.search(r"diffusion: .* window 2/2 \[\d\d:\d\d elapsed, 00:00 to go\]", bar) for bar in bars)
    assert any(re.search(r"reading video: .* 100% \[", bar) for bar in bars)
    assert "warning: Geo4D is running on the CPU" in terminal  # logs print above the bars

    scene = json.loads((out / "scene.json").read_text())
    fx = [frame["K"][0][0] for frame in scene["frames"]]
    h, w = scene["image_size"]
    centres = np.array([np.asarray(frame["camera_to_world"])[:3, 3] for frame in scene["frames"]])
    path = np.linalg.norm(np.diff(centres, axis=0), axis=1).sum()
    # The solve error in the plate's pixels, as Blender's, and the worst frame counted from 1 (index 3 is frame 4).
    quality, plate_width = scene["metadata"]["alignment"]["quality"], scene["metadata"]["clip_size"][1]
    worst = quality["worst_frames"][0]
    assert plate_width > w and (f"info: solve error {quality['mean_error_px'] * plate_width / w:.2f} px average in "
                                f"plate pixels ({quality['grade']}), worst "
                                f"{quality['frame_error_px'][worst] * plate_width / w:.2f} px at frame "
                                f"{scene['frames'][worst]['frame'] + 1} of the clip (counting from 1)") in terminal
    lines = stdout.splitlines()
    assert lines[0] == "done:" and lines[1] == "  17 frames (4-20 of the clip, counting from 1) at 57x32"
    focal = (f"  focal {min(fx):.1f} px = {min(fx) * 36 / w:.1f} mm" if max(fx) == min(fx) else
             f"  focal {min(fx):.1f}-{max(fx):.1f} px = {min(fx) * 36 / w:.1f}-{max(fx) * 36 / w:.1f} mm, per frame")
    assert lines[2] == focal + " (film back 36 mm wide)"
    assert lines[3].startswith(f"  camera path {path:.3g} scene units")
    assert lines[4] == "  1 warning" and lines[5].startswith("    Geo4D is running on the CPU")
    assert lines[6] == f"  files: {out} (scene.json, depth/, points/, windows/)"
    assert len(lines) == 7


def test_without_a_terminal_progress_is_plain_lines(tiny_model_dir, tmp_path):
    """What the add-on's engine log and CI see: one line per whole percent or window, no bar, no carriage return."""
    result = _reconstruct(CLIP, "--out", tmp_path / "bundle", "--model-dir", tiny_model_dir, *TINY_RUN,
                          "--keep-windows", "none", timeout=600)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "elapsed" not in result.stderr
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("diffusion:")] == ["diffusion: window 0/2",
                                                                         "diffusion: window 1/2",
                                                                         "diffusion: window 2/2"]
    assert lines.index("loading model: 0%") < lines.index("loading model: 100%") < lines.index("reading video: 0%")
    assert "writing bundle: 100%" in lines
    assert result.stdout.splitlines()[-1] == f"  files: {tmp_path / 'bundle'} (scene.json, depth/, points/)"


def test_zoom_shot_and_tripod_reach_the_addons_request(addon_zip, clip, tmp_path):
    """The add-on's two camera settings, through its real request (headless Blender)."""
    pytest.importorskip("bpy")
    from tests.addon_session import SCENE, run_bpy

    script = SCENE + """
rc = importlib.import_module(MOD + ".reconstruct")
settings = bpy.context.scene.parallax
sent = []
for zoom, tripod in ((False, "AUTO"), (True, "AUTO"), (False, "ON"), (False, "OFF")):
    settings.zoom_shot, settings.tripod = zoom, tripod
    sent.append(rc.reconstruct_options(bpy.context, clip)["align"])
result["sent"] = [[align["per_frame_focal"], align["nodal_pan"]] for align in sent]
report()
"""
    result = run_bpy(script, [addon_zip, clip], tmp_path / "profile")
    assert result["sent"] == [["auto", "auto"], ["on", "auto"], ["auto", "on"], ["auto", "off"]]
