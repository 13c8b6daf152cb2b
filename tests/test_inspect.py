"""`python -m engine inspect`: what a clip holds (decoded through the engine's readers) and what reconstructing it
would need, against the shared real clips (their README's frame counts, rates and sizes), clips written here with
OpenCV (known frames, rate, size), a variable-rate MP4 (its container's timestamps rewritten), a truncated AVI and
an image sequence; the memory and time figures against those docs/models.md states."""

import json
import os
import struct
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.clips.facts import clip_facts
from engine.commands.inspect import format_report
from engine.models import model_package
from tests.fixture_paths import GEO4D_FIXTURES
from tests.needs import NO_TORCH

ROOT = Path(__file__).resolve().parents[1]
CLIPS = GEO4D_FIXTURES.parent.parent / "clips"
requires_clips = pytest.mark.skipif(not (CLIPS / "drift-turn.mp4").is_file(), reason=f"no shared clips in {CLIPS}")


def inspect(tmp_path, *args):
    """(exit code, stdout, stderr) of the real command, with no model folder (tmp_path/no-weights)."""
    pytest.importorskip("torch", reason=NO_TORCH)
    env = {**os.environ, "PARALLAX_MODEL_DIR": str(tmp_path / "no-weights"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "engine", "inspect", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr


def report(tmp_path, *args) -> dict:
    code, out, err = inspect(tmp_path, *args, "--json")
    assert code == 0, out + err
    return json.loads(out)


def moving_bar(n: int, size: tuple[int, int]) -> np.ndarray:
    """uint8[n, H, W, 3] BGR frames: a white bar moving right, so every frame differs."""
    h, w = size
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i, :, (i * 3) % w: (i * 3) % w + 4] = 255
    return frames


def write_video(path: Path, frames: np.ndarray, fps: float, fourcc: str = "mp4v") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (frames.shape[2], frames.shape[1]))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def set_frame_durations(path: Path, runs: list[tuple[int, int]]) -> None:
    """Rewrite an MP4's time-to-sample table (moov/trak/mdia/minf/stbl/stts) to `runs` of (frames, duration in the
    track's time units): the container then gives those frames those timestamps. The media data comes before moov
    (as OpenCV writes it), so growing moov moves no chunk offset; the boxes around stts grow with it."""
    data = bytearray(path.read_bytes())
    chain = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stts")

    def find(depth: int) -> tuple[int, int]:
        pos, end = 0, len(data)
        for name in chain[:depth + 1]:
            while struct.unpack(">4s", data[pos + 4:pos + 8])[0] != name:
                pos += struct.unpack(">I", data[pos:pos + 4])[0]
                assert pos < end, f"no {name} box"
            end = pos + struct.unpack(">I", data[pos:pos + 4])[0]
            pos += 8
        return pos - 8, end - pos + 8

    pos, size = find(len(chain) - 1)
    assert pos > data.find(b"mdat"), "moov must follow the media data"
    table = struct.pack(">I4sII", 16 + 8 * len(runs), b"stts", 0, len(runs))
    table += b"".join(struct.pack(">II", count, duration) for count, duration in runs)
    grow = len(table) - size
    for depth in range(len(chain) - 1):
        start, box = find(depth)
        struct.pack_into(">I", data, start, box + grow)
    data[pos:pos + size] = table
    path.write_bytes(bytes(data))


def test_a_clip_written_with_known_frames_rate_and_size(tmp_path):
    clip = write_video(tmp_path / "known.mp4", moving_bar(30, (48, 64)), 25)
    facts = clip_facts(clip)
    assert (facts.decoded, facts.declared, facts.fps, facts.size) == (30, 30, 25.0, (48, 64))
    assert facts.duration_s == pytest.approx(1.2)
    assert np.allclose(facts.intervals_ms(), 40.0, atol=0.01)
    assert facts.fps_source == "file" and facts.problems() == []


def test_a_variable_frame_rate_is_found_in_the_timestamps(tmp_path):
    clip = write_video(tmp_path / "vfr.mp4", moving_bar(30, (48, 64)), 25)
    set_frame_durations(clip, [(15, 256), (15, 768)])  # 512 units a frame at 25 fps: 20 ms, then 60 ms
    facts = clip_facts(clip)
    steps = facts.intervals_ms()
    assert facts.decoded == 30 and np.allclose(steps[:15], 20.0, atol=0.01) and np.allclose(steps[15:], 60.0, atol=0.01)
    vfr = [p for p in facts.problems() if p.startswith("variable frame rate")]
    assert len(vfr) == 1 and "from 20.00 to 60.00 ms" in vfr[0]
    # The same clip with its own constant durations is not flagged (the check is not always on).
    constant = write_video(tmp_path / "cfr.mp4", moving_bar(30, (48, 64)), 25)
    set_frame_durations(constant, [(30, 512)])
    assert clip_facts(constant).variable_rate() is None


def test_a_truncated_clip_declares_more_frames_than_decode(tmp_path):
    whole = write_video(tmp_path / "whole.avi", np.random.default_rng(0).integers(0, 255, (30, 48, 64, 3), np.uint8),
                        25, "MJPG")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])  # the header (frame count) stays
    assert clip_facts(whole).problems() == []
    facts = clip_facts(cut)
    assert facts.declared == 30 and 0 < facts.decoded < 30
    assert facts.problems() == [f"only {facts.decoded} of the 30 frames the clip's header declares could be decoded "
                                f"(frames {facts.decoded + 1}-30 of the clip, counting from 1, are missing): the file "
                                "may be truncated or damaged; re-export or re-copy it for the whole shot"]


def test_an_image_sequence_counts_its_files_and_has_no_rate(tmp_path):
    folder = tmp_path / "plate"
    folder.mkdir()
    for i, frame in enumerate(moving_bar(5, (49, 65))):  # odd sides
        cv2.imwrite(str(folder / f"plate.{i + 1001:04d}.png"), frame)
    facts = clip_facts(folder / "plate.1003.png")
    assert (facts.kind, facts.decoded, facts.declared, facts.size) == ("image sequence", 5, None, (49, 65))
    assert facts.files == ("plate.1001.png", "plate.1005.png") and facts.intervals_ms() is None
    assert facts.fps == 24.0 and any("stores no frame rate" in p for p in facts.problems())
    assert any(p.startswith("odd frame size 65x49") for p in facts.problems())
    given = clip_facts(folder, fps=30)
    assert given.fps == 30 and given.duration_s == pytest.approx(5 / 30)
    assert not any("frame rate" in p for p in given.problems())


@pytest.fixture(scope="module")
def shared_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("shared-clips")


@pytest.fixture(scope="module")
def drift(shared_tmp):
    """The JSON report on drift-turn.mp4 (Geo4D, the defaults)."""
    return report(shared_tmp, CLIPS / "drift-turn.mp4")


@pytest.fixture(scope="module")
def coast(shared_tmp):
    """The JSON report on coast-drone.mp4 with GeometryCrafter."""
    return report(shared_tmp, CLIPS / "coast-drone.mp4", "--model", "geometrycrafter")


@requires_clips
def test_the_shared_clips_are_read_as_their_readme_says_and_reported_apart(shared_tmp, drift, coast):
    clip = drift["clip"]
    assert (clip["frames_decoded"], clip["frames_declared"], clip["fps"], clip["width"], clip["height"]) == \
        (64, 64, 25.0, 854, 480)
    assert clip["duration_s"] == pytest.approx(2.56) and drift["problems"] == []
    recon = drift["reconstruction"]
    # Geo4D: the clip's aspect at 320x512's area in multiples of 64; windows 0, 4, ..., 48.
    assert recon["processing_size"] == [320, 576] and recon["windows"] == 13
    assert recon["weights"]["present"] is False and "engine download geo4d" in recon["weights"]["get"]
    assert recon["needs"]["time"]["device"] == "cpu" and "no GPU benchmark figure" in recon["needs"]["time"]["gpu"]

    code, text_drift, _ = inspect(shared_tmp, CLIPS / "drift-turn.mp4")  # what a terminal shows (scripts/run.sh)
    assert code == 0 and text_drift.strip() == format_report(drift)
    text_coast = format_report(coast)
    assert "64 decoded, 64 declared" in text_drift and "854x480" in text_drift and "25 fps" in text_drift
    assert "110 decoded, 110 declared" in text_coast and "1024x576" in text_coast and "20 fps" in text_coast


@requires_clips
def test_geometrycrafter_on_the_coast_clip_needs_what_docs_models_md_predicts(coast):
    recon = coast["reconstruction"]
    assert coast["clip"]["frames_decoded"] == 110 and coast["clip"]["duration_s"] == pytest.approx(5.5)
    assert recon["processing_size"] == [576, 1024] and recon["windows"] == 1
    # docs/models.md's prediction for one 110-frame window at 576x1024 in fp16: 14.20 GB, weights 5.92 GB.
    assert recon["needs"]["gpu_memory"]["peak_gb"] == pytest.approx(14.20, abs=0.005)
    assert recon["needs"]["gpu_memory"]["weights_gb"] == pytest.approx(5.92, abs=0.005)
    assert recon["needs"]["time"]["seconds"] == pytest.approx(110 * 50.30)  # the CPU figure, one window of 110


def test_a_clip_at_geo4ds_training_aspect_needs_the_benchmarked_memory(tmp_path):
    clip = write_video(tmp_path / "wide.mp4", moving_bar(20, (160, 256)), 24)
    result = report(tmp_path, clip)
    assert result["clip"]["frames_decoded"] == 20 and result["reconstruction"]["processing_size"] == [320, 512]
    memory = result["reconstruction"]["needs"]["gpu_memory"]
    # docs/models.md, `python -m engine.bench memory` at 320x512: fp16 peak 4.61 GB, weights 2.93 GB.
    assert (memory["precision"], memory["peak_gb"], memory["weights_gb"]) == ("fp16", 4.61, 2.93)
    assert any("smaller than the processing size" in p for p in result["problems"])


def test_the_time_estimate_gives_back_the_benchmark_at_its_own_setting(tmp_path):
    # The CPU figure's run: 16 frames at 64x128, one window, one step, fp32: 5.6076 s per frame in total. The
    # options are reconstruct's: frames 4-19 of 40, and settings that change nothing here (seed, bundle, alignment).
    clip = write_video(tmp_path / "bench.mp4", moving_bar(40, (64, 128)), 24)
    result = report(tmp_path, clip, "--frames", "4:20", "--size", 64, 128, "--steps", 1, "--precision", "fp32",
                    "--seed", 7, "--point-stride", 3, "--no-rays")
    recon = result["reconstruction"]
    assert result["clip"]["frames_decoded"] == 40 and recon["frames"] == [4, 20]
    assert recon["processing_size"] == [64, 128] and recon["windows"] == 1
    assert recon["needs"]["time"]["seconds"] == pytest.approx(16 * 5.6076, rel=0.01)  # stages sum to 5.588


def test_bad_input_is_one_clear_error(tmp_path):
    code, out, err = inspect(tmp_path, tmp_path / "missing.mp4")
    assert code == 2 and err.startswith("error: video") and "fix:" in err and "Traceback" not in err
    clip = write_video(tmp_path / "ok.mp4", moving_bar(4, (48, 64)), 25)
    code, out, err = inspect(tmp_path, clip, "--size", 100, 100)
    assert code == 2 and "not a multiple of 64" in err and out == ""
    code, out, err = inspect(tmp_path, clip, "--frames", "6:9")
    assert code == 2 and "--frames 6:9 holds none of the clip's 4 frames" in err and out == ""
    code, out, err = inspect(tmp_path, clip, "--stride", 16)  # reconstruct's own check of the options
    assert code == 2 and "window stride 16 is not usable" in err and out == ""


def test_the_extensions_engine_inspects_without_the_benchmarks_and_says_so(tmp_path, addon_zip):
    # The zip's engine leaves engine/bench out (build_addon.DEV_ONLY): the clip is still reported.
    pytest.importorskip("torch", reason=NO_TORCH)
    zipfile.ZipFile(addon_zip).extractall(tmp_path / "addon")
    clip = write_video(tmp_path / "shot.mp4", moving_bar(20, (48, 64)), 25)
    # `python -m engine` from the unpacked zip finds its engine first. -S: without site's .pth files, so an editable
    # install of this checkout (setup_env.sh's) cannot hand the zip's engine the checkout's engine.bench; the
    # third-party packages come from site-packages through PYTHONPATH instead.
    paths = sysconfig.get_paths()
    env = {**os.environ, "PARALLAX_MODEL_DIR": str(tmp_path / "no-weights"),
           "PYTHONPATH": os.pathsep.join(dict.fromkeys((paths["purelib"], paths["platlib"])))}
    done = subprocess.run([sys.executable, "-S", "-m", "engine", "inspect", str(clip), "--json"],
                          cwd=tmp_path / "addon", env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["clip"]["frames_decoded"] == 20
    assert result["reconstruction"]["processing_size"] == list(model_package("geo4d").size_rule().fit((48, 64)))
    assert "not part of this engine build" in result["reconstruction"]["needs"]["unavailable"]
