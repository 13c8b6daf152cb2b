"""GeometryCrafter in the product: `reconstruct --model geometrycrafter` end to end on the real clip with the
golden fixtures' tiny random-weight model (converted into a model directory), each window exactly the
network's own prediction on its frames; the options it refuses; and the add-on's model choice in headless
Blender."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.needs import torch_or_skip

torch_or_skip()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from engine.errors import InputError  # noqa: E402
from engine.models.geometrycrafter.model import window_seed  # noqa: E402
from engine.models.geometrycrafter.pipeline import Options, predict  # noqa: E402
from engine.options import ReconstructOptions  # noqa: E402
from engine.pipeline.reconstruct import check_options, load_model  # noqa: E402
from engine.windows.predictions import load_windows  # noqa: E402
from engine.windows.resize import resize_window_maps  # noqa: E402
from tests.addon_session import CLIP, ENGINE_ENV, ROOT, SCENE, run_bpy  # noqa: E402
from tests.conftest import TINY_GC_WINDOW  # noqa: E402

# 14 frames (3..16) at 64x128 in windows of 8 with stride 6: two windows sharing frames 6 and 7.
FRAMES, SIZE, STRIDE = (3, 17), (64, 128), 6


@pytest.mark.parametrize("variant", ["determ", "diff"])
def test_reconstruct_command_end_to_end(variant, tiny_gc_model_dir, tmp_path):
    out = tmp_path / "bundle"
    command = [sys.executable, "-m", "engine", "reconstruct", str(CLIP), "--out", str(out),
               "--model", "geometrycrafter", "--variant", variant, "--model-dir", str(tiny_gc_model_dir),
               "--frames", f"{FRAMES[0]}:{FRAMES[1]}", "--size", *map(str, SIZE), "--stride", str(STRIDE),
               "--steps", "2", "--device", "cpu", "--keep-windows", "fp32"]
    result = subprocess.run(command, cwd=ROOT, env=ENGINE_ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    scene = json.loads((out / "scene.json").read_text())
    assert [f["frame"] for f in scene["frames"]] == list(range(*FRAMES))
    assert scene["metadata"]["model"] == "geometrycrafter" and scene["metadata"]["variant"] == variant
    assert scene["metadata"]["processing_size"] == list(SIZE) and scene["image_size"] == [64, 114]  # 854x480
    for frame in scene["frames"]:
        assert np.isfinite(np.asarray(frame["camera_to_world"])).all()
        assert (out / frame["depth"]).is_file() and (out / frame["points"]).is_file()
    windows = load_windows(out / "windows")
    assert windows.modalities == ("pointmap",) and windows.pointmap_frame == "camera"
    assert windows.window_starts.tolist() == [0, 6] and windows.window_length == TINY_GC_WINDOW
    assert windows.rgb.shape == (14, 64, 114, 3)
    assert set(np.unique(windows.pointmap_conf)) <= {0.0, 1.0}

    # Each window is the network's own prediction on its frames (at the processing size), resized.
    model = load_model(ReconstructOptions(video=CLIP, out=out, model="geometrycrafter", variant=variant,
                                          model_dir=tiny_gc_model_dir, device="cpu"))
    clip_frames = _frames(FRAMES, SIZE)
    for g, start in enumerate(windows.window_starts.tolist()):
        video = torch.from_numpy(clip_frames[start:start + TINY_GC_WINDOW]).permute(0, 3, 1, 2).float() / 255.0
        expected = predict(model.network, video, Options(window_size=TINY_GC_WINDOW, overlap=0, num_inference_steps=2,
                                                        seed=window_seed(123, start)))
        maps = resize_window_maps({"pointmap": expected.point_map.numpy(),
                                   "pointmap_conf": expected.valid.float().numpy()}, (64, 114))
        # The fixtures' end-to-end tolerances (the engine runs in another process with other thread counts,
        # and free-running sampling amplifies summation order): 1e-3, masks at most 0.1 % flipped.
        assert np.mean(windows.pointmap_conf[g] != maps["pointmap_conf"]) <= 1e-3
        both = (windows.pointmap_conf[g] > 0) & (maps["pointmap_conf"] > 0)
        assert np.allclose(windows.pointmap[g][both], maps["pointmap"][both], rtol=1e-3, atol=1e-3)


def _frames(frames: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    from engine.clips.video import read_video

    return read_video(CLIP, frames[0], frames[1], size, None).frames


def test_options_geometrycrafter_refuses(tmp_path):
    base = dict(video=CLIP, out=tmp_path / "b", device="cpu")
    with pytest.raises(InputError, match="Geo4D has no variant 'determ'"):
        check_options(ReconstructOptions(model="geo4d", variant="determ", **base))
    with pytest.raises(InputError, match="window stride 110"):
        check_options(ReconstructOptions(model="geometrycrafter", stride=110, **base))
    check_options(ReconstructOptions(model="geometrycrafter", variant="determ", **base))  # stride: the model's 85


def test_processing_size_not_a_multiple_of_64_is_refused(tiny_gc_model_dir, tmp_path):
    command = [sys.executable, "-m", "engine", "reconstruct", str(CLIP), "--out", str(tmp_path / "b"),
               "--model", "geometrycrafter", "--model-dir", str(tiny_gc_model_dir), "--size", "96", "128",
               "--device", "cpu"]
    result = subprocess.run(command, cwd=ROOT, env=ENGINE_ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "not a multiple of 64" in result.stdout + result.stderr
    assert not (tmp_path / "b").exists()


def test_addon_reconstructs_with_geometrycrafter(addon_zip, clip, tmp_path, tiny_gc_model_dir):
    script = SCENE + """
import time, json  # noqa: E402
prefs.geometrycrafter_dir = sys.argv[3]
prefs.device = "cpu"
settings = bpy.context.scene.parallax
settings.model, settings.variant = "geometrycrafter", "determ"
settings.preset = "CUSTOM"
settings.stride, settings.steps, settings.use_custom_size, settings.size_h, settings.size_w = 6, 2, True, 64, 128
settings.use_clip_range, settings.frame_start, settings.frame_end = False, 1, 14
rc = importlib.import_module(MOD + ".reconstruct")
result["run"] = reconstruct()
result["engine_log"] = bpy.context.window_manager.parallax_log.splitlines()
scene_json = json.loads((rc.bundle_dir(clip) / "scene.json").read_text())
result["metadata"] = {k: scene_json["metadata"][k] for k in ("model", "variant", "stride", "processing_size")}
result["frames"] = len(scene_json["frames"])
result["cameras_added"] = len(bpy.data.cameras) - len(before["cameras"])
report()
"""
    result = run_bpy(script, [addon_zip, clip, tiny_gc_model_dir], tmp_path / "profile", timeout=600)
    assert result["run"]["status"] == ["FINISHED"], result["run"]
    assert result["engine_log"][0] == "info\tGeometryCrafter on cpu, fp32, torch runtime"
    assert result["metadata"] == {"model": "geometrycrafter", "variant": "determ", "stride": 6,
                                  "processing_size": [64, 128]}
    assert result["frames"] == 14 and result["cameras_added"] == 1


def test_the_package_and_the_options_check_import_without_torch():
    """The add-on and the protocol read a model's LABEL, WINDOW_LENGTH, DEFAULT_STRIDE and VARIANTS before any
    model (or torch) loads."""
    script = """
import sys  # noqa: E402
for name in ("torch", "safetensors"):
    sys.modules[name] = None  # `import name` now raises ImportError
from engine.models import model_package  # noqa: E402
from engine.options import ReconstructOptions  # noqa: E402
from engine.pipeline.reconstruct import check_options, stride_of  # noqa: E402
package = model_package("geometrycrafter")
options = ReconstructOptions(video="clip.mp4", out="bundle", model="geometrycrafter", variant="determ")
check_options(options)
print(package.LABEL, package.WINDOW_LENGTH, package.VARIANTS, stride_of(options))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["GeometryCrafter", "110", "('diff',", "'determ')", "85"]
