"""Image-sequence clips: numbered PNG / EXR frames written here read back as written (folder and numbered-file
forms, frame ranges), their errors, and `reconstruct` on a PNG sequence of real footage equal to the video's."""

import json
import subprocess
import sys

import cv2
import numpy as np
import OpenEXR
import pytest

from engine.errors import InputError
from engine.clips.images import linear_to_srgb8
from engine.formats.sequence import find_sequence
from engine.clips.video import probe_video, read_video
from engine.windows.predictions import load_windows
from engine.pipeline import ReconstructOptions, run_reconstruct
from tests.fixture_paths import GEO4D_FIXTURES

CLIP = GEO4D_FIXTURES.parent.parent / "clips" / "drift-turn.mp4"


def _frames(n, h=24, w=40, seed=0):
    """uint8[n, h, w, 3] RGB frames of noise (every value occurs, so rounding errors show)."""
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _write_png(folder, name, rgb, bits=8):
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if bits == 16:
        image = image.astype(np.uint16) * 257  # 255 -> 65535
    folder.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(folder / name), image)


def _srgb8_to_linear(srgb):
    """The sRGB transfer's inverse (IEC 61966-2-1), as a renderer writes linear EXR from an sRGB texture."""
    x = srgb.astype(np.float64) / 255
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _write_exr(path, linear, dtype=np.float32):
    channels = {name: np.ascontiguousarray(linear[..., i], dtype) for i, name in enumerate("RGB")}
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels) as f:
        f.write(str(path))


@pytest.mark.parametrize("bits", [8, 16])
def test_png_sequence_reads_back_as_written(tmp_path, bits):
    frames = _frames(6)
    for i, rgb in enumerate(frames):
        _write_png(tmp_path / "plate", f"shot_{i + 1:04d}.png", rgb, bits)
    (tmp_path / "plate" / "notes.txt").write_text("not a frame")
    # One frame's file (any of them) and the folder name the same sequence; frame 0 is shot_0001.
    for path in (tmp_path / "plate" / "shot_0004.png", tmp_path / "plate"):
        assert probe_video(path) == ((24, 40), 24.0)
        clip = read_video(path)
        assert np.array_equal(clip.frames, frames) and clip.frame_indices.tolist() == list(range(6))
    part = read_video(tmp_path / "plate", 2, 5, fps=12.5)
    assert np.array_equal(part.frames, frames[2:5]) and part.frame_indices.tolist() == [2, 3, 4]
    assert part.fps == 12.5
    resized = read_video(tmp_path / "plate" / "shot_0001.png", 0, 2, size=(12, 20))
    expected = [cv2.resize(f, (20, 12), interpolation=cv2.INTER_AREA) for f in frames[:2]]
    assert np.array_equal(resized.frames, np.stack(expected))


def test_grey_and_alpha_pngs_become_rgb(tmp_path):
    rgb = _frames(1)[0]
    grey16 = (rgb[..., 0].astype(np.uint16) * 257)
    assert cv2.imwrite(str(tmp_path / "g.0001.png"), grey16)
    bgra = np.dstack([cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), np.full(rgb.shape[:2], 7, np.uint8)])
    assert cv2.imwrite(str(tmp_path / "a.0001.png"), bgra)
    assert np.array_equal(read_video(tmp_path / "g.0001.png").frames[0], np.repeat(rgb[..., :1], 3, axis=2))
    assert np.array_equal(read_video(tmp_path / "a.0001.png").frames[0], rgb)


def test_exr_sequence_from_1001_is_srgb_of_the_linear_values(tmp_path):
    frames = _frames(3, seed=1)
    for i, rgb in enumerate(frames):
        _write_exr(tmp_path / f"plate.{1001 + i}.exr", _srgb8_to_linear(rgb), np.float16 if i == 2 else np.float32)
    clip = read_video(tmp_path / "plate.1001.exr")
    assert clip.frame_indices.tolist() == [0, 1, 2]
    assert np.array_equal(clip.frames[:2], frames[:2])  # float32: exact after rounding
    assert np.abs(clip.frames[2].astype(int) - frames[2]).max() <= 1  # half floats: within one step
    # Out-of-range light is clipped, not wrapped.
    assert linear_to_srgb8(np.array([-1.0, 0.0, 1.0, 7.5, np.nan])).tolist() == [0, 0, 255, 255, 0]


def test_sequence_numbering_follows_blender(tmp_path):
    for name in ("a_8.png", "a_9.png", "a_10.png", "a_0011.png", "b_9.png", "a_9.png.bak"):
        (tmp_path / name).write_bytes(b"")
    # a_0011 is padded differently (another sequence); b_ and .bak have another head or tail.
    assert [f.name for f in find_sequence(tmp_path / "a_9.png").files] == ["a_8.png", "a_9.png", "a_10.png"]
    assert find_sequence(tmp_path / "a_9.png").numbers == (8, 9, 10)


def test_missing_frame_mixed_sizes_and_unsupported_formats_are_refused(tmp_path):
    frames = _frames(4)
    for i in (1, 2, 4):
        _write_png(tmp_path / "gap", f"f.{i:03d}.png", frames[i - 1])
    with pytest.raises(InputError, match=r"frame 3 .* missing .*f\.002\.png to f\.004\.png"):
        read_video(tmp_path / "gap" / "f.001.png")
    for i in range(3):
        _write_png(tmp_path / "sizes", f"f{i}.png", frames[i] if i != 2 else _frames(1, 30, 40)[0])
    with pytest.raises(InputError, match=r"frame 2 .*\(f2\.png\) is 40x30.*f0\.png\) is 40x24"):
        read_video(tmp_path / "sizes")
    dpx = tmp_path / "dpx"
    dpx.mkdir()
    (dpx / "scan.0001.dpx").write_bytes(b"SDPX" + bytes(100))
    with pytest.raises(InputError, match=r"(?s)scan\.0001\.dpx .*not a supported.*PNG, TIFF, JPEG, BMP"):
        probe_video(dpx)
    broken = tmp_path / "broken"
    _write_png(broken, "b.01.png", frames[0])
    (broken / "b.02.png").write_bytes(b"not a png")
    (broken / "b.03.exr").write_bytes(b"not an exr")
    with pytest.raises(InputError, match=r"cannot read the image .*b\.02\.png"):
        read_video(broken / "b.01.png")
    with pytest.raises(InputError, match=r"b\.03\.exr is not a complete EXR file"):
        read_video(broken / "b.03.exr")
    (broken / "other.7.png").write_bytes(b"")
    with pytest.raises(InputError, match="holds 3 numbered image sequences"):
        read_video(broken)
    with pytest.raises(InputError, match="zero frames from frame 5"):
        read_video(tmp_path / "sizes", 5, 9)
    with pytest.raises(InputError, match="does not exist"):
        read_video(tmp_path / "nowhere" / "f.0001.png")


def test_reconstruct_png_sequence_equals_the_video(tiny_model_dir, tmp_path):
    """drift-turn's first 17 frames as PNGs, reconstructed through the CLI with --fps 25, give the same window
    predictions (frames, point maps) as the video itself."""
    video = read_video(CLIP, 0, 17)
    for i, rgb in enumerate(video.frames):
        _write_png(tmp_path / "seq", f"drift.{i + 1:04d}.png", rgb)
    result = subprocess.run([sys.executable, "-m", "engine", "reconstruct", tmp_path / "seq" / "drift.0001.png",
                             "--out", tmp_path / "from_seq", "--model-dir", tiny_model_dir, "--device", "cpu",
                             "--size", "32", "64", "--steps", "1", "--fps", "25"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    from_video = run_reconstruct(ReconstructOptions(video=CLIP, out=tmp_path / "from_video", model_dir=tiny_model_dir,
                                                    size=(32, 64), device="cpu", steps=1, frames=(0, 17)))
    scenes = [json.loads((folder / "scene.json").read_text()) for folder in (tmp_path / "from_seq", from_video)]
    assert [f["frame"] for f in scenes[0]["frames"]] == list(range(17))
    assert scenes[0]["fps"] == scenes[1]["fps"] == 25.0
    assert scenes[0]["metadata"]["clip_size"] == [480, 854]
    seq_windows, video_windows = (load_windows(folder / "windows") for folder in (tmp_path / "from_seq", from_video))
    assert np.array_equal(seq_windows.rgb, video_windows.rgb)
    assert np.allclose(seq_windows.pointmap, video_windows.pointmap, atol=1e-5)
    with pytest.raises(InputError, match="fps is -1"):
        run_reconstruct(ReconstructOptions(video=tmp_path / "seq", out=tmp_path / "bad", model_dir=tiny_model_dir,
                                           fps=-1))
