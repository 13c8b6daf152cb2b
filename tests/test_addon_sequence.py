"""An image-sequence Movie Clip in a fresh Blender with the installed extension: the reconstruct request names its
first frame's file and the scene's frame rate, frame 0 of the engine is the clip's first frame as Blender numbers
it (sequences numbered from 0001 and from 1001), and Reconstruct with the tiny model imports every frame."""

import json
from pathlib import Path

import cv2
import pytest

from engine.clips.video import read_video
from tests.addon_session import CLIP, run_bpy
from tests.test_addon_engine_run import TINY


def _write_sequence(folder, pattern, first, frames):
    folder.mkdir()
    for i, rgb in enumerate(frames):
        assert cv2.imwrite(str(folder / pattern.format(first + i)), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder / pattern.format(first)


def test_sequence_clip_reconstructs(addon_zip, tmp_path, tiny_model_dir):
    frames = read_video(CLIP, 0, 17, size=(72, 128)).frames
    from_0001 = _write_sequence(tmp_path / "a", "drift_{:04d}.png", 1, frames)
    from_1001 = _write_sequence(tmp_path / "b", "plate.{:04d}.png", 1001, frames)
    script = TINY + """
scene = bpy.context.scene
scene.render.fps, scene.render.fps_base = 30, 1.001

def sent(c):
    options = rc.reconstruct_options(bpy.context, c)
    return {"source": c.source, "duration": c.frame_duration, "video": options["video"],
            "frames": options["frames"], "fps": options["fps"]}

result["from_0001"] = sent(clip)
result["from_1001"] = sent(bpy.data.movieclips.load(sys.argv[4]))
inside = bpy.data.movieclips.load(sys.argv[4].replace("1001", "1005"))
try:
    rc.reconstruct_options(bpy.context, inside)
except ep.EngineUnavailable as exc:
    result["inside"] = {"duration": inside.frame_duration, "problem": exc.problem, "fix": exc.fix}
settings.use_clip_range = True
result["run"] = reconstruct()
result["bundle"] = str(rc.bundle_dir(clip))
result["scene"] = [scene.frame_start, scene.frame_end, scene.render.fps, round(scene.render.fps_base, 6)]
report()
"""
    result = run_bpy(script, [addon_zip, from_0001, tiny_model_dir, from_1001], tmp_path / "profile")
    # Blender numbers a sequence's frames from the file it was opened with: frame 1 is file 0001 (or 1001), the
    # engine's frame 0 (scene frames 1..16 are engine frames [0, 16)); the rate is the scene's.
    for name, path in (("from_0001", from_0001), ("from_1001", from_1001)):
        assert result[name] == {"source": "SEQUENCE", "duration": 17, "video": str(path), "frames": [0, 16],
                                "fps": pytest.approx(30 / 1.001)}
    # Opened from a later file, Blender starts there but the engine would not: refused, saying which file to open.
    assert result["inside"]["duration"] == 13
    assert "plate.1005.png" in result["inside"]["problem"] and "plate.1001.png" in result["inside"]["fix"]
    assert result["run"]["status"] == ["FINISHED"], result["run"]
    scene = json.loads((Path(result["bundle"]) / "scene.json").read_text())
    assert [f["frame"] for f in scene["frames"]] == list(range(17))
    assert scene["fps"] == pytest.approx(30 / 1.001) and scene["source_clip"] == str(from_0001)
    assert scene["metadata"]["clip_size"] == [72, 128]
    assert result["scene"] == [1, 17, 30, 1.001]
