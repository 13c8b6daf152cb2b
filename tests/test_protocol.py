"""The engine's JSON-lines server over real pipes: `python -m engine serve` in a subprocess."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.addon_session import CLIP, ENGINE_ENV

ROOT = Path(__file__).resolve().parent.parent


class Engine:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "engine", "serve"], cwd=ROOT, env=ENGINE_ENV, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def send(self, obj) -> None:
        self.proc.stdin.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"engine closed stdout; stderr:\n{self.proc.stderr.read()}"
        return json.loads(line)

    def until(self, types: set, job: str) -> list[dict]:
        """Events up to and including the first of `types` for `job`."""
        events = []
        while True:
            events.append(self.read())
            if events[-1]["type"] in types and events[-1].get("id") == job:
                return events


@pytest.fixture
def engine():
    e = Engine()
    yield e
    if e.proc.poll() is None:
        e.proc.kill()
    e.proc.wait(10)


def test_ping_answers_with_version_and_pid(engine):
    engine.send({"type": "ping", "id": "p1"})
    pong = engine.read()
    assert pong == {"type": "pong", "id": "p1", "protocol": 3, "engine_version": "0.1.0",
                    "pid": engine.proc.pid, "busy": False}


@pytest.mark.parametrize("line, problem", [
    ("this is not json", "not a JSON line"),
    ('{"type": "explode"}', "unknown message type 'explode'"),
    ('{"type": "align", "id": "a", "windows": "x.npz", "out": "b", "colour": 1}', "'align' has no field(s) colour"),
    ('{"type": "align", "id": "a"}', "missing 2 required positional arguments: 'windows' and 'out'"),
    ('["ping"]', "unknown message type"),
])
def test_malformed_requests_get_an_error_and_the_engine_stays_up(engine, line, problem):
    engine.send(line)
    error = engine.read()
    assert error["type"] == "error" and problem in error["problem"] and error["fix"]
    engine.send({"type": "ping", "id": "still"})
    assert engine.read()["type"] == "pong"


def test_stray_prints_cannot_reach_the_protocol_stream():
    code = ("from engine.commands import serve; out = serve._take_stdout(); "
            "print('noise from a library'); import os; os.write(1, b'C-level noise\\n'); "
            "out.write('protocol\\n'); out.flush()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout == "protocol\n"
    assert "noise from a library" in proc.stderr and "C-level noise" in proc.stderr


def test_failing_job_reports_problem_and_fix_and_the_next_job_runs(engine, tmp_path):
    for job in ("j1", "j2"):
        engine.send({"type": "align", "id": job, "windows": str(tmp_path / "none.npz"), "out": str(tmp_path / "b")})
        events = engine.until({"result", "error", "cancelled"}, job)
        assert events[-1]["type"] == "error" and "does not exist" in events[-1]["problem"], events
    assert not (tmp_path / "b").exists()


def test_cancel_without_job_is_a_warning_and_shutdown_exits_cleanly(engine):
    engine.send({"type": "cancel", "id": "nothing"})
    event = engine.read()
    assert event["type"] == "log" and event["level"] == "warning"
    engine.send({"type": "shutdown"})
    assert engine.proc.wait(30) == 0


def test_closing_stdin_stops_the_engine(engine):
    engine.proc.stdin.close()
    assert engine.proc.wait(30) == 0


def tiny_reconstruct(job: str, out: Path, model_dir: Path) -> dict:
    """A reconstruct request for the tiny random-weight model: 20 frames (2 windows) at 32x64, 2 steps, CPU."""
    return {"type": "reconstruct", "id": job, "options": {
        "video": str(CLIP), "out": str(out), "model_dir": str(model_dir), "device": "cpu", "size": [32, 64],
        "frames": [0, 20], "stride": 4, "steps": 2}}


def test_reconstruct_reports_progress_then_its_bundle_and_refuses_a_second_job_meanwhile(engine, tmp_path,
                                                                                        tiny_model_dir):
    engine.send(tiny_reconstruct("r1", tmp_path / "b1", tiny_model_dir))
    engine.send(tiny_reconstruct("r2", tmp_path / "b2", tiny_model_dir))
    events = engine.until({"result", "error", "cancelled"}, "r1")
    refused = [e for e in events if e.get("id") == "r2"]
    assert refused and refused[0]["type"] == "error" and "busy with job 'r1'" in refused[0]["problem"]
    progress = [e for e in events if e["type"] == "progress"]
    stages = list(dict.fromkeys(e["stage"] for e in progress))
    assert stages[0] == "loading model" and stages[-1] == "writing bundle" and len(stages) >= 4, stages
    assert all(0.0 <= e["fraction"] <= 1.0 for e in progress)
    logs = [(e["level"], e["message"]) for e in events if e["type"] == "log" and e["id"] == "r1"]
    assert logs[0] == ("info", "Geo4D on cpu, fp32, torch runtime") and logs[1][0] == "warning", logs
    result = events[-1]
    assert result["type"] == "result" and result["bundle"] == str(tmp_path / "b1") and result["seconds"] > 0
    scene = json.loads((tmp_path / "b1" / "scene.json").read_text())
    assert [f["frame"] for f in scene["frames"]] == list(range(20))
    assert not (tmp_path / "b2").exists()


def test_cancel_stops_a_running_reconstruct_and_writes_nothing(engine, tmp_path, tiny_model_dir):
    engine.send(tiny_reconstruct("r1", tmp_path / "b1", tiny_model_dir))
    first = engine.read()
    assert first["type"] == "progress" and first["id"] == "r1"
    engine.send({"type": "cancel", "id": "r1"})
    events = engine.until({"result", "error", "cancelled"}, "r1")
    assert events[-1] == {"type": "cancelled", "id": "r1"}
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor a temporary folder
    engine.send({"type": "ping", "id": "p"})
    assert engine.read()["busy"] is False


@pytest.fixture(scope="module")
def windows_file(tmp_path_factory) -> Path:
    """Simulated window predictions (exact up to each window's similarity) of a ray-cast 24-frame scene."""
    from engine.windows.predictions import save_windows
    from engine.synthetic.procedural import make_scene
    from engine.synthetic.simulate import simulate_windows

    return save_windows(simulate_windows(make_scene("static", 24, (48, 64)), stride=4),
                        tmp_path_factory.mktemp("windows") / "windows")


def test_align_request_fuses_a_windows_file_into_a_bundle(engine, tmp_path, windows_file):
    engine.send({"type": "align", "id": "a1", "windows": str(windows_file), "out": str(tmp_path / "b"),
                 "point_stride": 2})
    events = engine.until({"result", "error", "cancelled"}, "a1")
    stages = list(dict.fromkeys(e["stage"] for e in events if e["type"] == "progress"))
    assert stages[0] == "loading predictions" and stages[-1] == "writing bundle", stages
    assert events[-1]["type"] == "result" and events[-1]["bundle"] == str(tmp_path / "b"), events[-1]
    scene = json.loads((tmp_path / "b" / "scene.json").read_text())
    assert [f["frame"] for f in scene["frames"]] == list(range(24)) and scene["points"]["stride"] == 2


def test_cancelled_align_writes_nothing(engine, tmp_path, windows_file):
    engine.send({"type": "align", "id": "a1", "windows": str(windows_file), "out": str(tmp_path / "b")})
    assert engine.read()["type"] == "progress"
    engine.send({"type": "cancel"})  # no id: whatever runs
    assert engine.until({"result", "error", "cancelled"}, "a1")[-1] == {"type": "cancelled", "id": "a1"}
    assert list(tmp_path.iterdir()) == []


def test_reconstruct_options_are_checked_by_name(engine):
    engine.send({"type": "reconstruct", "id": "r", "options": {"video": "a.mp4", "out": "b", "colour": "red"}})
    error = engine.until({"result", "error", "cancelled"}, "r")[-1]
    assert error["type"] == "error" and "no field(s) colour" in error["problem"] and "stride" in error["fix"]
    engine.send({"type": "reconstruct", "id": "s", "options": ["a.mp4"]})
    error = engine.until({"result", "error", "cancelled"}, "s")[-1]
    assert error["type"] == "error" and "must be a JSON object, not list" in error["problem"]


def test_weights_request_says_missing_foreign_verified_and_broken_with_the_licences(engine, tmp_path,
                                                                                     tiny_gc_model_dir):
    """The state the add-on's preferences show, from the engine's own verification (manifest, size, sha256)."""
    def check(job, folder) -> dict:
        engine.send({"type": "weights", "id": job, "model": "geometrycrafter", "model_dir": str(folder)})
        events = engine.until({"result", "error"}, job)
        assert events[-1]["type"] == "result" and events[-1]["bundle"] == str(folder), events
        (state,) = [e for e in events if e["type"] == "weights"]
        return state

    missing = check("w1", tmp_path / "none")
    assert missing["state"] == "missing" and missing["label"] == "GeometryCrafter"
    assert "research" in missing["licences"] and "Stability AI Community License" in missing["licences"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not weights")
    foreign = check("w2", tmp_path / "mine")
    assert foreign["state"] == "broken" and "not a GeometryCrafter model folder Parallax wrote" in foreign["problem"]
    assert "empty or new model folder" in foreign["fix"]
    assert check("w3", tiny_gc_model_dir)["state"] == "verified"
    model = tmp_path / "model"
    shutil.copytree(tiny_gc_model_dir, model)
    with open(model / "moge.safetensors", "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    broken = check("w4", model)
    assert broken["state"] == "broken" and "moge.safetensors is corrupt" in broken["problem"]
    assert "download and convert the weights again" in broken["fix"]

    # Without the acceptance the engine downloads nothing, whatever the client does.
    engine.send({"type": "weights", "id": "w6", "model": "geometrycrafter", "action": "download",
                 "model_dir": str(tmp_path / "new")})
    error = engine.until({"result", "error"}, "w6")[-1]
    assert error["type"] == "error" and "licences of GeometryCrafter's weights were not accepted" in error["problem"]
    assert not (tmp_path / "new").exists()

    engine.send({"type": "weights", "id": "w5", "model": "nerf"})
    error = engine.read()
    assert error["type"] == "error" and error["id"] == "w5" and "unknown model 'nerf'" in error["problem"]
