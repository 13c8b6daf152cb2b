"""Reliability battery, window predictions: `python -m engine align` (run in-process through engine.cli.main,
the code path of the command line) on damaged, truncated, malformed or degenerate window folders gives one
clear error (problem and fix) or a correct bundle; never a traceback, nothing outside the output changes and an
earlier bundle at --out stays byte-identical."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from tests.reliability.conftest import assert_unchanged, snapshot


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    from engine.synthetic.procedural import make_scene
    from engine.synthetic.simulate import simulate_windows
    from engine.windows.predictions import save_windows

    return save_windows(simulate_windows(make_scene("static", 20, (24, 32)), stride=4),
                        tmp_path_factory.mktemp("good") / "windows")


@pytest.fixture(scope="module")
def earlier(good, tmp_path_factory) -> Path:
    """A bundle aligned from the good windows: what a failed run at the same --out must keep."""
    out = tmp_path_factory.mktemp("earlier") / "bundle"
    assert main(["align", str(good), "--out", str(out), "--point-stride", "4"]) == 0
    return out


def align(windows: Path, out: Path, capsys, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["align", str(windows), "--out", str(out), "--point-stride", "4", *extra])
    return code, capsys.readouterr().err


def refused(windows: Path, tmp_path: Path, earlier: Path, capsys, *phrases: str) -> str:
    """align exits 2 with `error: ... fix: ...` naming the phrases; the folder (with an earlier bundle at
    --out) is byte-identical afterwards."""
    out = tmp_path / "bundle"
    if not out.exists():
        shutil.copytree(earlier, out)
    before = snapshot(tmp_path)
    code, err = align(windows, out, capsys)
    assert code == 2 and err.startswith("error: ") and "\n  fix: " in err, err
    for phrase in phrases:
        assert phrase.lower() in err.lower(), err
    assert_unchanged(tmp_path, before)
    return err


def variant(good: Path, tmp_path: Path) -> Path:
    bad = tmp_path / "windows"
    shutil.copytree(good, bad)
    return bad


def _npy_header_end(data: bytes) -> int:
    return 10 + int.from_bytes(data[8:10], "little")


NPY_DAMAGE = {
    "zero bytes": lambda b: b"",
    "truncated to half": lambda b: b[: len(b) // 2],
    "header only": lambda b: b[: _npy_header_end(b)],
    "one byte short": lambda b: b[:-1],
    "magic damaged": lambda b: b"\x00" * 6 + b[6:],
    "header dict damaged": lambda b: b[:12] + b"{{{{((((" + b[20:],
    "header length huge": lambda b: b[:8] + b"\xff\xff" + b[10:],
    "text": lambda b: b"a plate's notes\n" * 30,
    "garbage version": lambda b: b[:6] + b"\x09\x00" + b[8:],
}


# Every damage on pointmap.npy; the common ones (what a full disk or a cut copy leaves) on the other maps.
DAMAGED_FILES = [("pointmap", d) for d in NPY_DAMAGE] + [
    (name, d) for name in ("pointmap_conf", "ray_dirs", "rgb") for d in ("zero bytes", "truncated to half")]


@pytest.mark.parametrize("name, damage", DAMAGED_FILES)
def test_damaged_npy_is_a_clear_error(good, earlier, tmp_path, capsys, name, damage):
    bad = variant(good, tmp_path)
    file = bad / f"{name}.npy"
    file.write_bytes(NPY_DAMAGE[damage](file.read_bytes()))
    refused(bad, tmp_path, earlier, capsys, f"{name}.npy")


def _array(bad: Path, name: str, value) -> None:
    np.save(bad / f"{name}.npy", value)


ARRAYS = {
    "object array": ("pointmap", lambda a: np.array([{"a": 1}] * 3, dtype=object), "pointmap.npy"),
    "wrong shape": ("disparity", lambda a: a[:, :, :-1], "disparity"),
    "float64 maps": ("ray_moments", lambda a: a.astype(np.float64), None),
    "int rgb": ("rgb", lambda a: a.astype(np.int32), "rgb"),
    "nan in pointmap": ("pointmap", lambda a: np.where(np.arange(a.size).reshape(a.shape) % 97 == 0, np.nan, a),
                        "NaN"),
    "inf in disparity": ("disparity", lambda a: np.where(a > 0, np.inf, a), "inf"),
    "negative confidence": ("pointmap_conf", lambda a: -a, "negative"),
    "all-zero confidence": ("pointmap_conf", np.zeros_like, "pointmap_conf = 0"),
    "all-zero pointmap": ("pointmap", np.zeros_like, "pointmap"),
    "all-zero rays": ("ray_dirs", np.zeros_like, "ray_dirs"),
    "constant pointmap": ("pointmap", lambda a: np.ones_like(a), "pointmap"),
    "huge pointmap": ("pointmap", lambda a: a * np.float32(1e37), "pointmap"),
    "all-zero disparity": ("disparity", np.zeros_like, None),
}


@pytest.mark.parametrize("case", ARRAYS)
def test_malformed_or_degenerate_maps(good, earlier, tmp_path, capsys, case):
    name, change, phrase = ARRAYS[case]
    bad = variant(good, tmp_path)
    _array(bad, name, change(np.load(bad / f"{name}.npy")))
    if phrase is None:  # usable data: a correct bundle, and nothing else written
        before = snapshot(tmp_path)
        code, err = align(bad, tmp_path / "out", capsys)
        assert code == 0, err
        assert_unchanged(tmp_path, before, ignore=[tmp_path / "out"])
        assert len(json.loads((tmp_path / "out" / "scene.json").read_text())["frames"]) == 20
    else:
        refused(bad, tmp_path, earlier, capsys, phrase)


META = {
    "empty": (lambda m: "", "not valid JSON"),
    "not JSON": (lambda m: "{fps: 24", "not valid JSON"),
    "a list": (lambda m: "[1, 2]", "windows.json"),
    "missing fps": (lambda m: _drop(m, "fps"), "lacks"),
    "fps nan": (lambda m: _set(m, fps=math.nan), "fps"),
    "fps inf": (lambda m: _set(m, fps=math.inf), "fps"),
    "fps 1e308": (lambda m: _set(m, fps=1e308), "fps"),
    "fps zero": (lambda m: _set(m, fps=0), "fps"),
    "fps text": (lambda m: _set(m, fps="24"), None),
    "num_frames huge": (lambda m: _set(m, num_frames=2**40), "frames"),
    "num_frames negative": (lambda m: _set(m, num_frames=-3), "num_frames"),
    "num_frames text": (lambda m: _set(m, num_frames="many"), "malformed"),
    "window start negative": (lambda m: _set(m, window_starts=[-1] + m["window_starts"][1:]), "outside"),
    "window starts too few": (lambda m: _set(m, window_starts=m["window_starts"][:1]), "window"),
    "window length zero": (lambda m: _set(m, window_length=0), "window_length"),
    "image size wrong": (lambda m: _set(m, image_size=[48, 64]), "shape"),
    "image size nested": (lambda m: _set(m, image_size=[[1, 2], 3]), "malformed"),
    "newer version": (lambda m: _set(m, format_version=99), "update Parallax"),
    "foreign format": (lambda m: _set(m, format="someone.else"), "format"),
    "deeply nested": (lambda m: "[" * 100000 + "]" * 100000, "windows.json"),
    "rgb named but missing": (lambda m: _set(m, rgb="colours.npy"), None),
}


def _set(meta: dict, **values) -> str:
    return json.dumps({**meta, **values})


def _drop(meta: dict, key: str) -> str:
    return json.dumps({k: v for k, v in meta.items() if k != key})


@pytest.mark.parametrize("case", META)
def test_malformed_windows_json(good, earlier, tmp_path, capsys, case):
    edit, phrase = META[case]
    bad = variant(good, tmp_path)
    (bad / "windows.json").write_text(edit(json.loads((bad / "windows.json").read_text())))
    if phrase is None:
        before = snapshot(tmp_path)
        code, err = align(bad, tmp_path / "out", capsys)
        assert code in (0, 2) and "Traceback" not in err, err
        if code == 2:
            assert "fix:" in err
        assert_unchanged(tmp_path, before, ignore=[tmp_path / "out"])
    else:
        refused(bad, tmp_path, earlier, capsys, phrase)


def test_a_missing_map_is_named(good, earlier, tmp_path, capsys):
    bad = variant(good, tmp_path)
    (bad / "ray_moments.npy").unlink()
    refused(bad, tmp_path, earlier, capsys, "ray_moments.npy")


def test_a_folder_without_windows_json(good, earlier, tmp_path, capsys):
    bad = variant(good, tmp_path)
    (bad / "windows.json").unlink()
    refused(bad, tmp_path, earlier, capsys, "windows.json")


def test_a_damaged_npz(good, earlier, tmp_path, capsys):
    bad = tmp_path / "windows.npz"
    bad.write_bytes(b"PK\x03\x04" + bytes(500))
    refused(bad, tmp_path, earlier, capsys, "windows.npz")


def test_the_good_windows_align(good, tmp_path, capsys):
    before = snapshot(tmp_path)
    code, err = align(good, tmp_path / "out", capsys)
    assert code == 0, err
    assert_unchanged(tmp_path, before, ignore=[tmp_path / "out"])
