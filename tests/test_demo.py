"""The weight-free pipeline demo end to end: render -> simulated windows -> align -> bundle -> .blend + preview.

Everything runs for real in subprocesses (Blender renders the scene, the importer runs in bpy), as
`scripts/run.sh` runs it, at a tiny size.
"""

import json
import subprocess
import sys
from pathlib import Path

import cv2

from engine.formats.bundle import read_bundle
from engine.commands.demo import LABEL

ROOT = Path(__file__).resolve().parents[1]
FRAMES, SIZE = 20, (48, 80)


def run(*cmd):
    done = subprocess.run([sys.executable, *map(str, cmd)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_demo_makes_a_labelled_bundle_a_blend_and_a_preview(tmp_path):
    out = tmp_path / "demo"
    log = run("-m", "engine", "demo", "--out", out, "--frames", FRAMES, "--size", *SIZE)
    assert "SIMULATED" in log

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["abs_rel"] < 0.2 and metrics["focal_error"] < 0.1  # realistic corruptions, but aligned
    bundle = read_bundle(out / "bundle")
    assert len(bundle.frames) == FRAMES and bundle.image_size == SIZE
    assert json.loads((out / "bundle" / "scene.json").read_text())["metadata"]["label"] == LABEL
    clip = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(clip.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES

    blend, preview = tmp_path / "scene.blend", tmp_path / "preview.png"
    run("scripts/bundle_to_blend.py", out / "bundle", blend, preview, "--clip", out / "clip.mp4")
    picture = cv2.imread(str(preview))
    assert picture is not None and picture.std() > 5  # something was drawn, not a flat background
    facts = json.loads(run("-c", f"""
import json, bpy
bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
s = bpy.context.scene
print(json.dumps({{"camera": s.camera is not None, "start": s.frame_start, "end": s.frame_end,
                   "animated": bool(s.camera and s.camera.animation_data and s.camera.animation_data.action)}}))
""").strip().splitlines()[-1])
    assert facts["camera"] and facts["animated"]
    assert facts["end"] - facts["start"] + 1 == FRAMES


def test_bundle_to_blend_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    done = subprocess.run([sys.executable, "scripts/bundle_to_blend.py", tmp_path, tmp_path / "x.blend",
                           tmp_path / "x.png"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "not a bundle" in done.stderr
    assert not (tmp_path / "x.blend").exists()
