"""The engine process as Blender sees it: start it, send requests, collect events, stop it.

No bpy here (so it is testable from plain Python) and no engine code but its error types: the add-on
speaks the protocol of docs/protocol.md as plain dicts. The process is started from an argument list, never a
shell: [python, "-m", "engine", "serve"] with the engine sources on PYTHONPATH. Two reader threads
drain its stdout (events) and stderr (log); the main thread only polls a queue, so Blender never waits.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

from .engine_link import PROTOCOL_VERSION  # the protocol of the engine this add-on ships
from .errors import EngineUnavailable

# Lines of the engine's stderr kept to explain a crash.
STDERR_TAIL = 40
# The engine stops a cancelled job at its next progress report; one that has not after this many seconds
# (a long model step on the CPU, a hung process) is ended by stopping the engine (the next run starts another).
CANCEL_GRACE_S = 10.0
# After SIGTERM the engine stops its job and removes what it was writing (engine/cli.py, 2 s at most);
# it gets this long before SIGKILL, which would leave hidden staging folders for the next run to clean.
TERMINATE_GRACE_S = 5.0
# Events the client makes up itself (the engine never sends these types).
EXIT = "exit"
PROTOCOL_BROKEN = "protocol_broken"


def engine_root() -> Path:
    """The folder holding the `engine` package: bundled in the extension, else the repository's (developing)."""
    here = Path(__file__).resolve().parent
    for root in (here, here.parent):
        if (root / "engine" / "__main__.py").is_file():
            return root
    raise EngineUnavailable(f"no engine sources next to {here}",
                            "reinstall the Parallax extension from a zip made by build_addon.py")


class EngineProcess:
    """One running `python -m engine serve`."""

    def __init__(self, python: str, root: Path | None = None):
        self.python = str(python)
        self.root = Path(root) if root is not None else engine_root()
        self._proc: subprocess.Popen | None = None
        self._events: queue.Queue = queue.Queue()
        self._stderr: collections.deque = collections.deque(maxlen=STDERR_TAIL)
        self._write_lock = threading.Lock()
        self._ids = itertools.count(1)
        self.protocol: int | None = None  # the engine's protocol version, once a pong said it

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if not Path(self.python).is_file():
            raise EngineUnavailable(f"the engine Python '{self.python}' does not exist",
                                    "create the engine environment or set its Python in the add-on preferences")
        env = dict(os.environ)
        # Blender's own Python settings must not leak into the engine's interpreter.
        env.pop("PYTHONHOME", None)
        env["PYTHONPATH"] = str(self.root)
        env["PYTHONUNBUFFERED"] = "1"
        try:
            self._proc = subprocess.Popen(
                [self.python, "-m", "engine", "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, cwd=str(self.root), env=env, text=True, encoding="utf-8", bufsize=1,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))  # no console window on Windows
        except OSError as exc:
            raise EngineUnavailable(f"cannot run the engine Python '{self.python}': {exc}",
                                    "check the engine Python in the add-on preferences") from None
        stderr_reader = threading.Thread(target=self._read_stderr, args=(self._proc,), daemon=True)
        stderr_reader.start()
        threading.Thread(target=self._read_events, args=(self._proc, stderr_reader), daemon=True).start()

    def new_id(self, prefix: str = "job") -> str:
        return f"{prefix}-{next(self._ids)}"

    def send(self, request: dict) -> None:
        """Write one request line. A dead process shows up as an `exit` event, not as an exception here."""
        if self._proc is None:
            raise EngineUnavailable("the engine is not running", "start a reconstruction again")
        try:
            with self._write_lock:
                self._proc.stdin.write(json.dumps(request) + "\n")
                self._proc.stdin.flush()
        except (OSError, ValueError):  # a broken pipe, or stdin already closed
            pass  # the stdout reader reports the exit with the engine's last words

    def poll(self) -> list[dict]:
        """All events received so far, without waiting."""
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def wait_event(self, timeout: float) -> dict | None:
        """The next event, waiting up to `timeout` seconds (for scripts and tests; the UI uses poll)."""
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the engine to shut down; if it has not exited after `timeout` seconds send SIGTERM, and
        SIGKILL only if it has not exited TERMINATE_GRACE_S seconds later."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self.send({"type": "shutdown"})
            try:
                proc.stdin.close()
            except OSError:
                pass
            for action, wait in ((None, timeout), (proc.terminate, TERMINATE_GRACE_S), (proc.kill, timeout)):
                if action is not None:
                    action()
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._proc = None

    def _read_events(self, proc: subprocess.Popen, stderr_reader: threading.Thread) -> None:
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"type": PROTOCOL_BROKEN, "line": line.rstrip("\n")}
            self._events.put(event)
        returncode = proc.wait()
        stderr_reader.join(1.0)  # the exit event carries the engine's last words
        self._events.put({"type": EXIT, "returncode": returncode, "stderr": self.stderr_tail()})

    def _read_stderr(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            self._stderr.append(line.rstrip("\n"))


class EngineJob:
    """One request's life on the client: its progress, then exactly one outcome.

    The first job on an engine sends a ping first and its request only when the pong shows the engine speaks
    this add-on's protocol version (an engine left running by an older add-on, or another engine, does not).
    outcome: None while running, then "result" (bundle set), "error" (problem/fix set) or "cancelled".
    weights: the `weights` event of a weights request (a model's state), once the engine sent it.
    """

    def __init__(self, engine: EngineProcess, request: dict):
        self.engine = engine
        self.id = request["id"]
        self.stage = "starting engine"
        self.fraction = 0.0
        self.log: list[tuple[str, str]] = []  # (level, message) the engine said about this job
        self.outcome: str | None = None
        self.bundle: str | None = None
        self.weights: dict | None = None
        self.problem = ""
        self.fix = ""
        self._cancelled_at: float | None = None
        self._request: dict | None = request
        self._hello = f"{self.id}-hello"
        if engine.protocol == PROTOCOL_VERSION:
            self._send_request()
        else:
            engine.send({"type": "ping", "id": self._hello})

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def cancel(self) -> None:
        if not self.done and self._cancelled_at is None:
            self._cancelled_at = time.monotonic()
            if self._request is not None:  # not sent: nothing runs, and the engine has not even answered a ping
                self.engine.stop(timeout=1.0)
                self.outcome = "cancelled"
            else:
                self.engine.send({"type": "cancel", "id": self.id})

    def update(self, events: list[dict]) -> None:
        """Apply this job's events (others are ignored) and the engine's death, in order."""
        for event in events:
            kind, event_id = event.get("type"), event.get("id")
            if self.done:
                return
            if kind == EXIT and self._cancelled_at is not None:
                self.outcome = "cancelled"
            elif kind == EXIT:
                self._fail(f"the engine process stopped unexpectedly (exit code {event['returncode']})",
                           _last_lines(event["stderr"]) or "see the system console for the engine's log")
            elif kind == PROTOCOL_BROKEN:
                self._fail(f"the engine sent something that is not protocol: {event['line'][:200]!r}",
                           "make sure the engine Python runs this extension's engine")
            elif kind == "pong" and event_id == self._hello:
                self._handshake(event)
            elif kind == "error" and event_id == "":
                # The engine could not read our request at all (it carries no id then): it will never run it.
                self._fail(f"the engine refused the request: {event.get('problem', '')}", _UPDATE_ENGINE)
            elif event_id != self.id:
                continue
            elif kind == "progress":
                self.stage, self.fraction = event["stage"], float(event["fraction"])
            elif kind == "log":
                self.log.append((event.get("level", "info"), event["message"]))
            elif kind == "weights":
                self.weights = event
            elif kind == "result":
                self.outcome, self.bundle, self.fraction = "result", event["bundle"], 1.0
            elif kind == "error":
                self._fail(event["problem"], event.get("fix", ""))
            elif kind == "cancelled":
                self.outcome = "cancelled"

    def poll(self) -> bool:
        """Read what the engine said; True when the job is over."""
        self.update(self.engine.poll())
        if not self.done and self._cancelled_at is not None and time.monotonic() - self._cancelled_at > CANCEL_GRACE_S:
            self.engine.stop(timeout=1.0)
            self.outcome = "cancelled"
        return self.done

    def _handshake(self, pong: dict) -> None:
        protocol = pong.get("protocol")
        if protocol != PROTOCOL_VERSION:
            self.engine.stop(timeout=1.0)  # the next run starts this add-on's own engine
            self._fail(f"the engine speaks protocol version {protocol}, this add-on version {PROTOCOL_VERSION} "
                       f"(engine {pong.get('engine_version', '?')} at {self.engine.python})", _UPDATE_ENGINE)
            return
        self.engine.protocol = protocol
        self._send_request()

    def _send_request(self) -> None:
        request, self._request = self._request, None
        self.engine.send(request)

    def _fail(self, problem: str, fix: str) -> None:
        self.outcome, self.problem, self.fix = "error", problem, fix


_UPDATE_ENGINE = ("update the engine: run again (the add-on starts the engine it ships with); if this repeats, "
                  "reinstall the Parallax extension so that its engine and add-on match")


def _last_lines(text: str, n: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


# The add-on keeps one engine alive between runs so the model stays loaded.
_engine: EngineProcess | None = None


def get_engine(python: str) -> EngineProcess:
    """The running engine for `python`, started (or restarted after a crash or a Python change) if needed."""
    global _engine
    if _engine is not None and _engine.alive() and _engine.python == str(python):
        return _engine
    stop_engine()
    engine = EngineProcess(python)
    engine.start()
    _engine = engine
    return engine


def current_engine() -> EngineProcess | None:
    return _engine


def stop_engine() -> None:
    """Stop the engine if one runs (add-on disabled, Blender quitting)."""
    global _engine
    engine, _engine = _engine, None
    if engine is not None:
        engine.stop()
