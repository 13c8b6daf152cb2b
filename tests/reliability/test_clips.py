"""Reliability battery, clips and sequences: truncated, empty, foreign, oversized or damaged footage gives one
clear error (problem and fix) or the frames it holds with a warning naming the shortfall; `reconstruct` names
a bad clip or a read-only output before the model loads, and touches nothing outside its output."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.clips.images import MAX_PIXELS, read_image
from engine.clips.video import probe_video, read_video
from engine.errors import InputError
from tests.reliability.conftest import assert_clear_error, assert_unchanged, run_engine, snapshot
from tests.needs import torch_or_skip

FRAMES = 64


@pytest.fixture(scope="module")
def avi(tmp_path_factory) -> Path:
    """64 frames of MJPG in AVI, whose header states the frame count at its start."""
    path = tmp_path_factory.mktemp("clips") / "plate.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(FRAMES):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    return path


def _cut(source: Path, tmp_path: Path, fraction: float, name: str | None = None) -> Path:
    data = source.read_bytes()
    out = tmp_path / (name or source.name)
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


def test_a_whole_clip_has_no_shortfall(avi):
    clip = read_video(avi)
    assert len(clip.frames) == FRAMES and clip.declared_frames == FRAMES and clip.shortfall() is None


@pytest.mark.parametrize("fraction", [0.55, 0.9])
def test_a_truncated_clip_warns_with_the_numbers(avi, tmp_path, fraction):
    clip = read_video(_cut(avi, tmp_path, fraction))
    decoded = len(clip.frames)
    assert 0 < decoded < FRAMES
    note = clip.shortfall()
    assert f"only {decoded} of the {FRAMES} frames" in note \
        and f"frames {decoded + 1}-{FRAMES} of the clip, counting from 1, are missing" in note


def test_a_truncated_clip_read_within_what_it_holds_has_no_shortfall(avi, tmp_path):
    clip = read_video(_cut(avi, tmp_path, 0.55), 0, 20)
    assert len(clip.frames) == 20 and clip.shortfall() is None


def test_a_range_running_into_the_cut_warns_for_that_range(avi, tmp_path):
    clip = read_video(_cut(avi, tmp_path, 0.55), 10, 60)
    assert clip.declared_frames == 50 and "of the 50 frames" in clip.shortfall()


BAD_VIDEOS = {
    "zero bytes": (lambda p: p.write_bytes(b""), "plate.mp4"),
    "text": (lambda p: p.write_text("INT. KITCHEN - NIGHT\n" * 50), "plate.mp4"),
    "mp4 cut before its index": (None, "plate.mp4"),
    "missing": (lambda p: None, "does not exist"),
    "random bytes": (lambda p: p.write_bytes(np.random.default_rng(1).bytes(50_000)), "plate.mp4"),
}


@pytest.mark.parametrize("case", BAD_VIDEOS)
def test_an_unreadable_video_is_one_clear_error(avi, tmp_path, case):
    make, phrase = BAD_VIDEOS[case]
    path = tmp_path / "plate.mp4"
    if make is None:  # an MP4 writes its index (moov) last: a cut copy has none
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24, (64, 48))
        for _ in range(30):
            writer.write(np.zeros((48, 64, 3), np.uint8))
        writer.release()
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        make(path)
    for read in (probe_video, read_video):
        with pytest.raises(InputError) as info:
            read(path)
        assert phrase in str(info.value) and info.value.fix


@pytest.mark.parametrize("start, stop", [(70, None), (64, 80), (-1, 5), (5, 5)])
def test_a_frame_range_outside_the_clip(avi, start, stop):
    with pytest.raises(InputError) as info:
        read_video(avi, start, stop)
    assert "frame" in info.value.problem and info.value.fix


def _png(width: int, height: int) -> bytes:
    """A PNG signature and IHDR declaring width x height (no pixel data: a lying or cut file)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0"


def _bmp(width: int, height: int) -> bytes:
    return b"BM" + bytes(16) + struct.pack("<ii", width, height) + bytes(30)


def _jpeg(width: int, height: int) -> bytes:
    return b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 16) + bytes(14) + b"\xff\xc0" + struct.pack(
        ">HBHH", 17, 8, height, width) + bytes(12)


HUGE = {"png": _png(40000, 40000), "bmp": _bmp(33000, -33000), "jpg": _jpeg(65000, 65000)}


@pytest.mark.parametrize("suffix", HUGE)
def test_a_frame_declaring_more_than_2_30_pixels_is_refused_before_decoding(tmp_path, suffix):
    path = tmp_path / f"shot.0001.{suffix}"
    path.write_bytes(HUGE[suffix])
    with pytest.raises(InputError) as info:
        read_image(path)
    assert f"more than the {MAX_PIXELS:,}" in info.value.problem and info.value.fix


def _exr(path: Path, channels: dict[str, np.ndarray]) -> Path:
    import OpenEXR

    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels) as f:
        f.write(str(path))
    return path


def test_an_exr_declaring_a_huge_data_window_is_refused_before_reading(tmp_path):
    path = _exr(tmp_path / "shot.0001.exr", {c: np.ones((8, 8), np.float32) for c in "RGB"})
    data = bytearray(path.read_bytes())
    at = data.index(b"dataWindow\0box2i\0") + len(b"dataWindow\0box2i\0") + 4
    data[at: at + 16] = struct.pack("<4i", 0, 0, 39999, 39999)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="not a complete EXR|more than the"):
        read_image(path)


EXRS = {
    "zero bytes": (lambda p: p.write_bytes(b""), "not a complete EXR"),
    "truncated": ("cut", "not a complete EXR"),
    "alpha only": ({"A": np.ones((8, 8), np.float32)}, "no R, G, B or Y channels"),
    "depth-like channels": ({"Z": np.ones((8, 8), np.float32)}, "no R, G, B or Y channels"),
    "text": (lambda p: p.write_text("exr?\n" * 20), "not a complete EXR"),
}


@pytest.mark.parametrize("case", EXRS)
def test_a_broken_or_wrong_channel_exr_plate(tmp_path, case):
    make, phrase = EXRS[case]
    path = tmp_path / "shot.0001.exr"
    if make == "cut":
        rng = np.random.default_rng(0)
        _exr(path, {c: rng.random((64, 64), dtype=np.float32) for c in "RGB"})
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif isinstance(make, dict):
        _exr(path, make)
    else:
        make(path)
    with pytest.raises(InputError) as info:
        read_image(path)
    assert phrase in info.value.problem and info.value.fix


def test_nan_and_inf_in_an_exr_plate_become_black_and_white(tmp_path):
    values = np.full((4, 4), 0.5, np.float32)
    values[0, 0], values[1, 1], values[2, 2] = np.nan, np.inf, -np.inf
    image = read_image(_exr(tmp_path / "shot.0001.exr", {c: values for c in "RGB"}))
    assert image[0, 0, 0] == 0 and image[1, 1, 0] == 255 and image[2, 2, 0] == 0 and image[3, 3, 0] == 188


IMAGES = {
    "zero-byte png": (b"", "OpenCV cannot read"),
    "text as png": (b"not a picture\n" * 10, "OpenCV cannot read"),
    "png header only": (_png(64, 48), "OpenCV cannot read"),
}


@pytest.mark.parametrize("case", IMAGES)
def test_a_damaged_frame_of_a_sequence(tmp_path, case):
    data, phrase = IMAGES[case]
    for i in (1, 2, 3):
        cv2.imwrite(str(tmp_path / f"shot.{i:04d}.png"), np.full((48, 64, 3), 60 * i, np.uint8))
    (tmp_path / "shot.0002.png").write_bytes(data)
    with pytest.raises(InputError) as info:
        read_video(tmp_path / "shot.0001.png")
    assert phrase in info.value.problem and "shot.0002.png" in info.value.problem and info.value.fix


def test_a_float_tiff_is_named(tmp_path):
    cv2.imwrite(str(tmp_path / "shot.0001.tif"), np.ones((8, 8, 3), np.float32))
    with pytest.raises(InputError, match="float32"):
        read_image(tmp_path / "shot.0001.tif")


def test_reconstruct_names_a_bad_clip_before_the_model(tmp_path):
    torch_or_skip()  # the command loads torch before it gets to this check
    clip = tmp_path / "plate.mp4"
    clip.write_bytes(b"")
    before = snapshot(tmp_path)
    result = run_engine("reconstruct", clip, "--out", tmp_path / "bundle", "--model-dir", tmp_path / "no-model")
    assert_clear_error(result, "plate.mp4")
    assert "model" not in result.stderr.split("fix:")[0].lower()  # the clip is named, not the missing model
    assert_unchanged(tmp_path, before)


def test_reconstruct_names_an_oversized_sequence_before_the_model(tmp_path):
    torch_or_skip()  # the command loads torch before it gets to this check
    (tmp_path / "seq").mkdir()
    (tmp_path / "seq" / "shot.0001.png").write_bytes(_png(40000, 40000))
    before = snapshot(tmp_path)
    result = run_engine("reconstruct", tmp_path / "seq", "--out", tmp_path / "bundle", "--model-dir",
                        tmp_path / "no-model")
    assert_clear_error(result, "40000 x 40000")
    assert_unchanged(tmp_path, before)


def test_reconstruct_into_a_read_only_folder_fails_before_the_model(avi, read_only_folder):
    torch_or_skip()  # the command loads torch before it gets to this check
    result = run_engine("reconstruct", avi, "--out", read_only_folder / "bundle", "--model-dir",
                        read_only_folder.parent / "no-model")
    assert_clear_error(result, "cannot write", "Read-only")
    assert list(read_only_folder.iterdir()) == []
