"""scripts/run.sh's arguments: CLIP [OUT_DIR] [reconstruct options], an argument starting with "-" never taken as
the output folder. The parsing is the code run.sh sources (scripts/run_args.sh), run in bash; run.sh itself runs up
to where it would set up .venv (the rest, the set-up and the two-minute demo, is README's command, not a test)."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def parse(cwd: Path, *args: str) -> tuple[int, dict, str]:
    """(status, {clip, out, opts}, stderr) of parse_run_args ROOT ARGS in bash, from `cwd`."""
    script = ('source "$1/scripts/run_args.sh"; root=$1; shift; parse_run_args "$root" "$@" || exit $?; '
              'printf "%s\\0" "$clip" "$out" ${opts[@]+"${opts[@]}"}')
    done = subprocess.run(["bash", "-c", script, "bash", str(ROOT), *args], cwd=cwd, capture_output=True)
    fields = done.stdout.decode().split("\0")[:-1]
    parsed = {"clip": fields[0], "out": fields[1], "opts": fields[2:]} if fields else {}
    return done.returncode, parsed, done.stderr.decode()


def test_options_after_the_clip_are_not_the_output_folder(tmp_path):
    code, parsed, _ = parse(tmp_path, "shots/drift-turn.mp4", "--steps", "1")
    assert code == 0
    assert parsed == {"clip": str(tmp_path / "shots" / "drift-turn.mp4"), "out": str(ROOT / "out" / "drift-turn"),
                      "opts": ["--steps", "1"]}


def test_an_output_folder_then_options(tmp_path):
    code, parsed, _ = parse(tmp_path, "clip.mov", "renders/take 2", "--frames", "0:48", "--size", "320", "576")
    assert code == 0
    assert parsed == {"clip": str(tmp_path / "clip.mov"), "out": str(tmp_path / "renders" / "take 2"),
                      "opts": ["--frames", "0:48", "--size", "320", "576"]}


def test_the_clip_alone_and_a_folder_named_with_a_dash(tmp_path):
    assert parse(tmp_path, "/data/a.b.mp4")[1] == {"clip": "/data/a.b.mp4", "out": str(ROOT / "out" / "a.b"),
                                                    "opts": []}
    assert parse(tmp_path, "a.mp4", "./-odd", "--steps", "2")[1]["out"] == str(tmp_path / "-odd")


@pytest.mark.parametrize("args", [(), ("--steps", "1", "clip.mp4"), ("",)])
def test_no_clip_is_a_usage_error(tmp_path, args):
    code, parsed, err = parse(tmp_path, *args)
    assert code == 2 and parsed == {} and err.startswith("usage: scripts/run.sh CLIP [OUT_DIR]")


def test_run_sh_stops_before_setting_up_for_a_missing_clip_and_writes_nothing(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "scripts" / "run.sh"), "missing.mp4", "--steps", "1"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: no clip at {tmp_path / 'missing.mp4'}\n  fix:")
    assert list(tmp_path.iterdir()) == []  # no folder named --steps, nor any other
    done = subprocess.run(["bash", str(ROOT / "scripts" / "run.sh"), "--steps", "1"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("usage:") and list(tmp_path.iterdir()) == []
