"""`reconstruct` end to end with the tiny converted model on real footage, and its bad-input errors."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.alignment import AlignOptions
from engine.errors import Cancelled, EngineError, InputError, ModelError
from engine.windows.predictions import load_windows
from engine.pipeline import ReconstructOptions, run_reconstruct
from engine.models.window_model import SizeRule
from engine.pipeline.reconstruct import check_disk_space, load_model, output_size, stride_of
from tests.fixture_paths import GEO4D_FIXTURES
from tests.needs import torch_or_skip

CLIP = GEO4D_FIXTURES.parent.parent / "clips" / "drift-turn.mp4"


def _options(video, out, model_dir, **kw):
    # Tiny model (latent 4x8, UNet stride 32): 32x64 frames keep a run to a few seconds.
    return ReconstructOptions(video=video, out=out, model_dir=model_dir, size=(32, 64), **{"device": "cpu", **kw})


def test_reconstruct_drift_turn_end_to_end(tiny_model_dir, tmp_path):
    stages, spilled = [], []

    def progress(stage, fraction):
        stages.append((stage, fraction))
        if (stage, fraction) == ("diffusion", 0.5):
            # The maps live in nameless files beside the bundle (gone even if the engine is killed), not in memory.
            maps = Path("/proc/self/maps").read_text().splitlines()
            spilled.append((sum(f" {tmp_path}/" in line and line.endswith("(deleted)") for line in maps),
                            list(tmp_path.iterdir())))

    # 17 frames: two windows (0-15, 1-16); 2 DDIM steps keep it quick on 2 CPU cores.
    options = _options(CLIP, tmp_path / "bundle", tiny_model_dir, frames=(3, 20), stride=4, steps=2)
    bundle = run_reconstruct(options, progress=progress)
    assert spilled == [(5, [])]
    scene = json.loads((bundle / "scene.json").read_text())
    assert [f["frame"] for f in scene["frames"]] == list(range(3, 20))
    # drift-turn is 854x480: maps at the processing height with the clip's aspect.
    assert scene["image_size"] == [32, 57]
    assert scene["metadata"]["clip_size"] == [480, 854] and scene["metadata"]["processing_size"] == [32, 64]
    assert scene["fps"] == 25.0
    for frame in scene["frames"]:
        assert (bundle / frame["depth"]).is_file() and (bundle / frame["points"]).is_file()
        assert np.isfinite(np.asarray(frame["camera_to_world"])).all()
    windows = load_windows(bundle / "windows")
    assert windows.window_starts.tolist() == [0, 1] and windows.num_frames == 17
    assert windows.image_size == (32, 57) and windows.rgb.shape == (17, 32, 57, 3)
    # Unit rays, to float16's rounding (3 components of relative error 2**-11): the bundle keeps fp16 maps.
    assert np.allclose(np.linalg.norm(windows.ray_dirs.astype(np.float32), axis=-1), 1.0, atol=2e-3)
    assert (windows.pointmap_conf > 0).mean() > 0.5
    assert {s for s, _ in stages} >= {"loading model", "encoding", "diffusion", "writing bundle"}
    assert ("diffusion", 1.0) in stages


def test_odd_resolution_short_clip(tiny_model_dir, tmp_path):
    """A 5-frame 101x67 clip: one short window, maps back at the clip's aspect."""
    video = tmp_path / "odd.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (101, 67))
    rng = np.random.default_rng(0)
    for _ in range(5):
        writer.write(rng.integers(0, 255, (67, 101, 3), dtype=np.uint8))
    writer.release()
    bundle = run_reconstruct(_options(video, tmp_path / "bundle", tiny_model_dir, stride=4, steps=1))
    scene = json.loads((bundle / "scene.json").read_text())
    assert len(scene["frames"]) == 5 and scene["image_size"] == [32, 48]
    windows = load_windows(bundle / "windows")
    assert windows.window_starts.tolist() == [0] and windows.window_lengths.tolist() == [5]


def test_cancel_between_windows_leaves_nothing(tiny_model_dir, tmp_path):
    seen = []

    def cancelled():
        return any(stage == "diffusion" and fraction > 0 for stage, fraction in seen)

    with pytest.raises(Cancelled):
        run_reconstruct(_options(CLIP, tmp_path / "bundle", tiny_model_dir, frames=(0, 17), stride=4, steps=1),
                        lambda stage, fraction: seen.append((stage, fraction)), cancelled)
    assert not list(tmp_path.iterdir())


def test_too_little_disk_for_the_window_predictions_is_refused(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    check_disk_space(tmp_path, free // 2)
    with pytest.raises(EngineError, match="GB free on the disk of") as error:
        check_disk_space(tmp_path, free + 10**12)
    assert "shorter frame range" in error.value.fix


def test_running_out_of_memory_is_explained_and_leaves_nothing(tiny_model_dir, tmp_path, monkeypatch):
    """A GPU that runs out of memory mid-clip (simulated: this machine has none) gets a message with the
    remedies, not a traceback, and no bundle or temporary file is left."""
    import torch

    options = _options(CLIP, tmp_path / "bundle", tiny_model_dir, frames=(0, 17), stride=4, steps=1)

    def out_of_memory(latent):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(load_model(options).backend, "decode", out_of_memory)
    with pytest.raises(EngineError, match=r"ran out of memory running Geo4D at 32x64 \(fp32, 1 window") as error:
        run_reconstruct(options)
    assert "smaller processing size" in error.value.fix
    assert list(tmp_path.iterdir()) == []


def test_model_stays_loaded_between_runs(tiny_model_dir, tmp_path):
    first = load_model(_options(CLIP, tmp_path / "a", tiny_model_dir))
    assert load_model(_options(CLIP, tmp_path / "b", tiny_model_dir, stride=2, steps=3)) is first


def test_options_from_protocol_json():
    """The Blender server builds options from JSON: null means the default, lists become tuples, the alignment's
    object its dataclass."""
    options = ReconstructOptions(video="clip.mp4", out="bundle", stride=None, steps=None, frames=[2, None],
                                 size=[320, 576], align=None)
    assert options.stride is None and stride_of(options) == 4  # the model's default stride
    assert options.steps == 5 and options.align == AlignOptions()
    zoom = ReconstructOptions(video="clip.mp4", out="bundle", align={"per_frame_focal": True})
    assert zoom.align == AlignOptions(per_frame_focal="on")
    assert options.frames == (2, None) and options.size == (320, 576) and options.video.name == "clip.mp4"
    with pytest.raises(InputError, match="`video` is missing"):
        ReconstructOptions(video=None, out="bundle")


def test_processing_size_keeps_aspect_near_training_area():
    processing_size = SizeRule(64, (320, 512), "Geo4D").fit
    assert processing_size((480, 854)) == (320, 576)
    assert processing_size((1080, 1920)) == (320, 576)
    assert processing_size((720, 720)) == (384, 384)
    assert processing_size((1920, 1080)) == (512, 320)
    assert processing_size((320, 512)) == (320, 512)
    assert output_size((480, 854), (320, 576)) == (320, 569)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "engine", "reconstruct", *map(str, args)],
                          capture_output=True, text=True)


def test_unreadable_video_fails_cleanly(tiny_model_dir, tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    result = _cli(bad, "--out", tmp_path / "bundle", "--model-dir", tiny_model_dir, "--device", "cpu")
    assert result.returncode == 2
    assert "clip.mp4" in result.stderr and "fix:" in result.stderr
    assert not (tmp_path / "bundle").exists()


def test_zero_frames_and_bad_options_fail_cleanly(tiny_model_dir, tmp_path):
    empty = tmp_path / "empty.avi"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (64, 48)).release()
    with pytest.raises(InputError, match="no decodable frames"):
        run_reconstruct(_options(empty, tmp_path / "b", tiny_model_dir))
    empty.unlink()
    with pytest.raises(InputError, match="zero frames"):
        run_reconstruct(_options(CLIP, tmp_path / "b", tiny_model_dir, frames=(500, 600)))
    with pytest.raises(InputError, match="multiple of 32"):
        run_reconstruct(ReconstructOptions(video=CLIP, out=tmp_path / "b", model_dir=tiny_model_dir,
                                           size=(30, 64), device="cpu"))
    with pytest.raises(InputError, match="stride"):
        run_reconstruct(_options(CLIP, tmp_path / "b", tiny_model_dir, frames=(0, 20), stride=16))
    with pytest.raises(InputError, match="steps is 0"):
        run_reconstruct(_options(CLIP, tmp_path / "b", tiny_model_dir, steps=0))
    with pytest.raises(InputError, match="unknown alignment option"):
        run_reconstruct(_options(CLIP, tmp_path / "b", tiny_model_dir, align={"bogus": 1}))
    assert not list(tmp_path.iterdir())


def test_missing_model_fails_cleanly(tmp_path):
    torch_or_skip()  # reconstruct loads torch before it looks at the model folder
    result = _cli(CLIP, "--out", tmp_path / "bundle", "--model-dir", tmp_path / "no-model", "--device", "cpu")
    assert result.returncode == 2
    assert "no-model does not exist" in result.stderr and "engine convert geo4d" in result.stderr
    assert not (tmp_path / "bundle").exists()
    with pytest.raises(ModelError):
        run_reconstruct(_options(CLIP, tmp_path / "bundle", tmp_path / "no-model"))


def test_a_command_without_torch_names_the_missing_package(tmp_path):
    """An engine environment made with the torch-free requirements (or a broken one) gets one clear line, not a
    traceback (torch is hidden here, so this runs in every lane)."""
    code = ("import sys; sys.modules['torch'] = None\nfrom engine.cli import main\n"
            "sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", code, "reconstruct", str(CLIP), "--out", str(tmp_path / "b"),
                             "--model-dir", str(tmp_path / "no-model"), "--device", "cpu"],
                            capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "`reconstruct` needs the package 'torch'" in result.stderr and "fix: install the engine's" in result.stderr
    assert not (tmp_path / "b").exists()


def test_a_device_this_machine_lacks_is_refused_before_anything_runs(tiny_model_dir, tmp_path):
    from engine.devices import machine

    here = machine()
    if here.mps or here.cuda:
        pytest.skip("this machine has the GPU the test asks for")
    with pytest.raises(EngineError, match="no Apple Silicon GPU"):
        run_reconstruct(_options(CLIP, tmp_path / "b", tiny_model_dir, device="mps"))
    with pytest.raises(EngineError, match="PyTorch sees no CUDA GPU"):
        run_reconstruct(_options(CLIP, tmp_path / "b", tiny_model_dir, device="cuda:1"))
    with pytest.raises(InputError, match="cpu does not run fp16"):
        run_reconstruct(_options(CLIP, tmp_path / "b", tiny_model_dir, precision="fp16"))
    assert not list(tmp_path.iterdir())
