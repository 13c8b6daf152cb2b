"""Reliability battery, the serve protocol: malformed requests are answered (with their id where they have one)
and the engine keeps serving; the add-on's job ends on any refusal instead of waiting forever; an engine of
another protocol version is named ("update the engine") before any request reaches it; job failures through
`serve` are clear errors, never "a bug in Parallax"."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from blender_addon.engine_process import PROTOCOL_VERSION, EngineJob, EngineProcess
from engine.protocol.messages import PROTOCOL_VERSION as ENGINE_PROTOCOL
from tests.reliability.conftest import ROOT, assert_unchanged, snapshot
from tests.test_protocol import Engine
from tests.needs import torch_or_skip


@pytest.fixture(scope="module")
def windows(tmp_path_factory) -> Path:
    """Simulated window predictions of a small static scene (a valid `align` input)."""
    from engine.synthetic.procedural import make_scene
    from engine.synthetic.simulate import simulate_windows
    from engine.windows.predictions import save_windows

    return save_windows(simulate_windows(make_scene("static", 8, (24, 32)), stride=4),
                        tmp_path_factory.mktemp("windows") / "windows")


class Serve(Engine):
    """`python -m engine serve` over real pipes (tests/test_protocol.py's client)."""

    def outcome(self, job: str) -> dict:
        return self.until({"result", "error", "cancelled"}, job)[-1]

    def alive(self) -> bool:
        from engine import __version__

        self.send({"type": "ping", "id": "alive?"})
        return self.read() == {"type": "pong", "id": "alive?", "protocol": ENGINE_PROTOCOL,
                               "engine_version": __version__, "pid": self.proc.pid, "busy": False}


@pytest.fixture
def serve():
    engine = Serve()
    yield engine
    if engine.proc.poll() is None:
        engine.proc.kill()
    engine.proc.wait(10)


MALFORMED = {
    "unknown top-level field": ('{"type": "align", "id": "r1", "windows": "w", "out": "o", "tile": 4}', "r1",
                                "no field(s) tile"),
    "missing fields": ('{"type": "align", "id": "r2"}', "r2", "missing"),
    "unknown type with id": ('{"type": "explode", "id": "r3"}', "r3", "unknown message type"),
    "field of the wrong kind": ('{"type": "reconstruct", "id": "r4", "options": 5}', "r4", "must be a JSON object"),
    "not JSON": ("reconstruct please", "", "not a JSON line"),
    "a JSON list": ('["ping", "r5"]', "", "unknown message type"),
    "id not a string": ('{"type": "align", "id": 7, "extra": 1}', "", "no field(s) extra"),
    "truncated line": ('{"type": "align", "id": "r6", "windows": "w', "", "not a JSON line"),
    "a JSON string": ('"ping"', "", "unknown message type"),
    "null type": ('{"type": null, "id": "r7"}', "r7", "unknown message type"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_request_is_answered_with_its_id_and_serving_goes_on(serve, case):
    line, job_id, phrase = MALFORMED[case]
    serve.send(line)
    error = serve.read()
    assert error["type"] == "error" and error["id"] == job_id and phrase in error["problem"] and error["fix"]
    assert serve.alive()


def test_pong_carries_the_protocol_version_the_add_on_speaks(serve):
    serve.send({"type": "ping", "id": "p"})
    assert serve.read()["protocol"] == PROTOCOL_VERSION == ENGINE_PROTOCOL


def _wait(job: EngineJob, timeout: float = 60) -> EngineJob:
    end = time.monotonic() + timeout
    while not job.poll():
        assert time.monotonic() < end, f"the job still waits after {timeout} s (stage {job.stage!r})"
        time.sleep(0.02)
    return job


@pytest.fixture
def client():
    engines = []

    def start(root: Path = ROOT) -> EngineProcess:
        engine = EngineProcess(sys.executable, root)
        engine.start()
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        engine.stop()


def test_an_error_without_id_ends_the_add_on_job(client, windows, tmp_path):
    """The engine cannot tie a refusal to the job (a line without a readable id): the job ends with the message."""
    engine = client()
    job = EngineJob(engine, {"type": "align", "id": "a1", "windows": str(windows), "out": str(tmp_path / "b")})
    _wait(job)
    assert job.outcome == "result"
    job = EngineJob(engine, {"type": "align", "id": "a2", "windows": str(windows), "out": str(tmp_path / "c"),
                             "newer_option": True})
    _wait(job, 20)
    assert job.outcome == "error" and "newer_option" in job.problem and "update the engine" in job.fix
    engine._proc.stdin.write("{ half a line\n")  # a refusal with an empty id while the next job waits
    engine._proc.stdin.flush()
    job = EngineJob(engine, {"type": "align", "id": "a3", "windows": str(windows), "out": str(tmp_path / "d")})
    _wait(job, 20)
    assert job.outcome == "error" and "not a JSON line" in job.problem and not (tmp_path / "c").exists()


def _older_engine(tmp_path: Path, version: int) -> Path:
    """A real copy of the engine that speaks protocol `version` (as an engine from another release would)."""
    root = tmp_path / f"engine-v{version}"
    shutil.copytree(ROOT / "engine", root / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    messages = root / "engine" / "protocol" / "messages.py"
    text = messages.read_text()
    assert f"PROTOCOL_VERSION = {ENGINE_PROTOCOL}" in text
    messages.write_text(text.replace(f"PROTOCOL_VERSION = {ENGINE_PROTOCOL}", f"PROTOCOL_VERSION = {version}"))
    return root


@pytest.mark.parametrize("version", [1, PROTOCOL_VERSION + 1])
def test_an_engine_of_another_protocol_is_named_before_any_request(client, windows, tmp_path, version):
    engine = client(_older_engine(tmp_path, version))
    before = snapshot(tmp_path)
    job = _wait(EngineJob(engine, {"type": "align", "id": "a1", "windows": str(windows),
                                   "out": str(tmp_path / "b")}), 20)
    assert job.outcome == "error" and f"protocol version {version}" in job.problem
    assert "update the engine" in job.fix
    assert not engine.alive()  # stopped: the next run starts the add-on's own engine
    assert_unchanged(tmp_path, before)


def test_the_handshake_is_done_once_per_engine(client, windows, tmp_path):
    engine = client()
    assert engine.protocol is None
    _wait(EngineJob(engine, {"type": "align", "id": "a1", "windows": str(windows), "out": str(tmp_path / "b")}))
    assert engine.protocol == PROTOCOL_VERSION
    job = _wait(EngineJob(engine, {"type": "align", "id": "a2", "windows": str(windows),
                                   "out": str(tmp_path / "b")}))
    assert job.outcome == "result" and job.bundle == str(tmp_path / "b")


def test_cancel_before_the_engine_answered_ends_the_job(tmp_path):
    silent = tmp_path / "silent-python"
    silent.write_text("#!/bin/sh\nexec sleep 600\n")
    silent.chmod(0o755)
    engine = EngineProcess(str(silent), ROOT)
    engine.start()
    job = EngineJob(engine, {"type": "align", "id": "a1", "windows": "w", "out": str(tmp_path / "b")})
    assert not job.poll()
    job.cancel()
    assert job.poll() and job.outcome == "cancelled" and not engine.alive()


def test_serve_names_a_read_only_output_not_a_bug(serve, windows, read_only_folder, tmp_path):
    torch_or_skip()  # the engine loads torch before it gets to this check
    serve.send({"type": "reconstruct", "id": "r1", "options": {
        "video": str(tmp_path / "plate.mp4"), "out": str(read_only_folder / "bundle"),
        "model_dir": str(tmp_path / "no-model")}})
    error = serve.outcome("r1")
    assert error["type"] == "error" and "cannot write" in error["problem"] and "Read-only" in error["problem"]
    serve.send({"type": "align", "id": "a1", "windows": str(windows), "out": str(read_only_folder / "bundle")})
    error = serve.outcome("a1")
    assert error["type"] == "error" and "Read-only" in error["problem"], error
    assert "bug" not in error["fix"] and error["fix"]
    assert list(read_only_folder.iterdir()) == [] and serve.alive()


def test_serve_names_a_damaged_windows_file(serve, windows, tmp_path):
    bad = tmp_path / "windows"
    shutil.copytree(windows, bad)
    (bad / "disparity.npy").write_bytes(b"")
    serve.send({"type": "align", "id": "a1", "windows": str(bad), "out": str(tmp_path / "bundle")})
    error = serve.outcome("a1")
    assert error["type"] == "error" and "disparity.npy" in error["problem"] and "bug" not in error["fix"]
    assert not (tmp_path / "bundle").exists()
