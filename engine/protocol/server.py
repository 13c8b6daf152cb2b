"""`python -m engine serve`: the engine side of the JSON-lines protocol (docs/protocol.md).

Requests are read on stdin, events written on stdout, one JSON object per line. One job runs at a
time in a worker thread while the main thread keeps reading, so ping and cancel are answered during
a job. The process stays alive between jobs (the pipeline keeps its model loaded) and exits on a
shutdown request or when stdin closes, which is what happens when Blender goes away.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, TextIO

from .. import __version__
from ..errors import Cancelled, EngineError
from ..models.weights import WeightsState
from ..reporting import Log, Progress
from .messages import (REQUESTS, AlignRequest, CancelledEvent, CancelRequest, ErrorEvent, LogEvent, PingRequest,
                       PongEvent, ProgressEvent, ProtocolError, ReconstructRequest, ResultEvent, ShutdownRequest,
                       WeightsEvent, WeightsRequest, build, decode, encode, request_id)

# How long a shutdown waits for a running job to notice its cancellation before exiting anyway.
SHUTDOWN_GRACE_S = 10.0
# The same on SIGTERM; then engine.cli removes what the job was writing. Below the add-on's wait
# between SIGTERM and SIGKILL (blender_addon/engine_process.py TERMINATE_GRACE_S).
TERMINATE_GRACE_S = 2.0


def _reconstruct(request: ReconstructRequest, progress: Progress, cancelled: Callable[[], bool], log: Log) -> Path:
    from ..options import ReconstructOptions
    from ..pipeline.reconstruct import run_reconstruct  # torch comes only with a model run

    return run_reconstruct(build(ReconstructOptions, request.options), progress, cancelled, log)


def _align(request: AlignRequest, progress: Progress, cancelled: Callable[[], bool], log: Log) -> Path:
    from ..windows.predictions import load_windows

    from ..formats.bundle import check_bundle_target, write_bundle

    inputs = {"window predictions": request.windows}
    check_bundle_target(request.out, inputs)
    progress("loading predictions", 0.0)
    windows = load_windows(request.windows)  # a bad file is refused before the alignment's imports
    from ..alignment import align, alignment_notes

    recon = align(windows, None, progress)
    for level, note in alignment_notes(windows, recon, None):  # window predictions carry no plate size
        log(level, note)
    progress("writing bundle", 0.0)
    return write_bundle(recon, request.out, windows=windows, point_stride=request.point_stride, inputs=inputs,
                        progress=progress)


def _weights(request: WeightsRequest, progress: Progress, cancelled: Callable[[], bool], log: Log):
    from ..models.weights import run_weights  # torch comes only with a conversion or a check

    return run_weights(request.model, request.action, request.model_dir, request.source, request.accept_licences,
                       progress)


# Each job returns the folder it wrote (a bundle), or a WeightsState (its model directory is the result's folder).
JOBS = {ReconstructRequest: _reconstruct, AlignRequest: _align, WeightsRequest: _weights}


@dataclass
class _Job:
    id: str
    thread: threading.Thread
    cancel: threading.Event


class Server:
    def __init__(self, out: TextIO):
        self._out = out
        self._out_lock = threading.Lock()
        self._job_lock = threading.Lock()
        self._job: _Job | None = None

    def emit(self, event) -> None:
        with self._out_lock:
            self._out.write(encode(event) + "\n")
            self._out.flush()

    def serve(self, lines) -> int:
        try:
            for line in lines:
                if not line.strip():
                    continue
                try:
                    request = decode(line, REQUESTS)
                except ProtocolError as exc:
                    self.emit(ErrorEvent(request_id(line), exc.problem, exc.fix))
                    continue
                if isinstance(request, ShutdownRequest):
                    break
                self._handle(request)
        except (SystemExit, KeyboardInterrupt):  # a signal (engine.cli): a short grace for the job, then exit
            self._stop_job(TERMINATE_GRACE_S)
            raise
        self._stop_job()
        return 0

    def _running(self) -> _Job | None:
        with self._job_lock:
            return self._job

    def _handle(self, request) -> None:
        job = self._running()
        if isinstance(request, PingRequest):
            self.emit(PongEvent(request.id, engine_version=__version__, pid=os.getpid(), busy=job is not None))
        elif isinstance(request, CancelRequest):
            if job is not None and request.id in ("", job.id):
                job.cancel.set()
            else:
                self.emit(LogEvent(request.id, "warning", f"no running job '{request.id}' to cancel"))
        elif job is not None:
            self.emit(ErrorEvent(request.id, f"the engine is busy with job '{job.id}'",
                                 "wait for its result or cancel it first"))
        else:
            cancel = threading.Event()
            thread = threading.Thread(target=self._run_job, args=(request, cancel), daemon=True)
            with self._job_lock:
                self._job = _Job(request.id, thread, cancel)
            thread.start()

    def _run_job(self, request, cancel: threading.Event) -> None:
        start = time.perf_counter()

        def progress(stage: str, fraction: float) -> None:
            # Every job reports progress often, so this is where a cancel request takes effect.
            if cancel.is_set():
                raise Cancelled()
            self.emit(ProgressEvent(request.id, stage, float(fraction)))

        try:
            output = JOBS[type(request)](request, progress, cancel.is_set,
                                         lambda level, message: self.emit(LogEvent(request.id, level, message)))
            if isinstance(output, WeightsState):
                self.emit(WeightsEvent(id=request.id, **asdict(output)))
                output = output.model_dir
            event = ResultEvent(request.id, str(Path(output).absolute()), time.perf_counter() - start)
        except Cancelled:
            event = CancelledEvent(request.id)
        except Exception as exc:
            event = _error_event(request.id, exc)
        # Free the slot before answering, so a client may send its next job as soon as it reads this event.
        with self._job_lock:
            self._job = None
        self.emit(event)

    def _stop_job(self, grace: float = SHUTDOWN_GRACE_S) -> None:
        job = self._running()
        if job is not None:
            job.cancel.set()
            job.thread.join(grace)


# The errors of a disk that refuses writes: read-only, no permission, full, over quota.
_DISK_ERRORS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}


def _error_event(job_id: str, exc: Exception) -> ErrorEvent:
    """What the user is told about a failed job: the error's own words, a missing package, or a bug."""
    if isinstance(exc, EngineError):
        return ErrorEvent(job_id, exc.problem, exc.fix)
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRORS:
        where = f" {exc.filename}" if exc.filename else ""
        return ErrorEvent(job_id, f"cannot write{where}: {exc.strerror}",
                          "choose a writable output folder with free space (a read-only disk, missing permissions "
                          "or a full disk); nothing was written")
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.split(".")[0] != __name__.split(".")[0]:
        return ErrorEvent(job_id, f"the engine's Python ({sys.executable}) lacks the package '{exc.name}'",
                          "create the engine environment again in the add-on preferences, or install the "
                          "engine's requirements into that Python")
    traceback.print_exc()
    return ErrorEvent(job_id, f"the engine failed: {type(exc).__name__}: {exc}",
                      "this is a bug in Parallax; the engine log (its stderr) has the traceback")
