"""Reliability battery, area "protocol" (this file: hostile nesting, issue 9 defect 6): a JSON line nested
deeper than Python's parser recurses used to kill `serve` with a RecursionError. Each line now gets an
error event and the same engine process answers the next request."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.reliability.conftest import start_engine
from tests.reliability.made import make_windows

DEEP = 100_000


@pytest.fixture(scope="module")
def engine():
    proc = start_engine("serve", stdin=subprocess.PIPE)
    yield proc
    proc.stdin.close()
    proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read()


def _ask(proc, line: str) -> dict:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    answer = proc.stdout.readline()
    assert answer, f"the engine died: {proc.wait(timeout=10)} {proc.stderr.read()[-2000:]}"
    return json.loads(answer)


def _still_serving(proc) -> None:
    assert _ask(proc, '{"type": "ping", "id": "p"}')["type"] == "pong"


@pytest.mark.parametrize("line", [
    "[" * DEEP + "]" * DEEP,
    "[" * DEEP,
    '{"a": ' * DEEP + "1" + "}" * DEEP,
    '{"type": "ping", "id": ' + "[" * DEEP + "]" * DEEP + "}",
    '{"type": "reconstruct", "id": "r", "options": ' + '{"x": ' * DEEP + "0" + "}" * DEEP + "}",
    '{"type": "align", "id": "a", "windows": ' + "[" * DEEP + "]" * DEEP + ', "out": "b"}',
    "[" * 3000 + "]" * 3000,
], ids=["arrays", "unclosed-arrays", "objects", "in-the-id", "in-the-options", "in-a-path", "just-past-the-limit"])
def test_a_deeply_nested_line_gets_an_error_and_the_engine_keeps_serving(line, engine):
    event = _ask(engine, line)
    assert event["type"] == "error" and event["fix"], event
    assert "nested too deeply" in event["problem"] or "not a JSON line" in event["problem"], event
    _still_serving(engine)


def test_nesting_the_parser_can_read_is_judged_by_its_content(engine):
    event = _ask(engine, "[" * 200 + "]" * 200)
    assert event["type"] == "error" and "unknown message type" in event["problem"]
    _still_serving(engine)


def test_a_job_runs_after_hostile_lines(engine, tmp_path):
    windows = make_windows(tmp_path / "windows")
    for line in ("[" * DEEP + "]" * DEEP, '{"a": ' * DEEP):
        assert _ask(engine, line)["type"] == "error"
    engine.stdin.write(json.dumps({"type": "align", "id": "job", "windows": str(windows),
                                   "out": str(tmp_path / "bundle"), "point_stride": 4}) + "\n")
    engine.stdin.flush()
    while (event := json.loads(engine.stdout.readline()))["type"] in ("progress", "log"):
        pass
    assert event["type"] == "result" and event["id"] == "job", event
    assert (tmp_path / "bundle" / "scene.json").is_file()
