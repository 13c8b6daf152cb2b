"""The messages of the JSON-lines protocol between the Blender add-on and `python -m engine serve`.

One JSON object per line, UTF-8. Every object has a "type"; the other keys are the fields of the
dataclass below with that type. Requests go client -> engine on stdin, events engine -> client on
stdout. `docs/protocol.md` is the public description; this module is its single source of truth.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar

from ..errors import EngineError, InputError
from ..models import MODELS
from ..models.weights import ACTIONS, WeightsState
from ..options import BundleOptions, check

# 2: a request that cannot be read is answered with its own id where the line has one (1: always "").
# 3: the `weights` request and event (a model's weights: check, download, convert).
# The add-on compares the pong's version with its own before its first request (docs/protocol.md).
PROTOCOL_VERSION = 3


class ProtocolError(EngineError):
    """A request line that is not valid protocol (bad JSON, unknown type, wrong fields)."""


# Requests (client -> engine)


@dataclass
class PingRequest:
    """Ask whether the engine is alive; answered by a PongEvent, even while a job runs."""

    type: ClassVar[str] = "ping"
    id: str = ""


@dataclass
class ReconstructRequest:
    """Run a model over a clip and write a bundle (engine.pipeline.run_reconstruct).

    options: the fields of engine.options.ReconstructOptions by name (video, out, model, ..., and `align`, an
    object of engine.options.AlignOptions' fields); built and checked when the job starts.
    """

    type: ClassVar[str] = "reconstruct"
    id: str
    options: dict


@dataclass
class AlignRequest:
    """Fuse an existing window-predictions file into a bundle (no model needed).

    windows: path of window predictions (docs/formats.md): a folder such as a bundle's `windows`, or a .npz.
    out: the bundle folder to write.
    point_stride: keep every k-th pixel in x and y for the point clouds (engine.options.BundleOptions).
    """

    type: ClassVar[str] = "align"
    id: str
    windows: str
    out: str
    point_stride: int = BundleOptions.__dataclass_fields__["point_stride"]  # the same field: one definition


@dataclass
class WeightsRequest:
    """A model's weights (engine.models.weights): action "check" verifies the model directory; "download" runs the
    engine's download (licences accepted: `accept_licences`, which the client sends only once the user accepted
    the licences a check showed) then its convert; "convert" converts the files already downloaded into `source`.

    model: a name of engine.models.MODELS; model_dir: the model directory (null: the model's default). Answered
    by a WeightsEvent with the state, then a ResultEvent whose `bundle` is the model directory.
    """

    type: ClassVar[str] = "weights"
    id: str
    model: str = field(metadata={"choices": tuple(MODELS), "flag": "model", "help": "a model name"})
    action: str = field(default="check", metadata={"choices": ACTIONS, "flag": "action", "help": "an action"})
    model_dir: str | None = None
    source: str | None = None
    accept_licences: bool = False


@dataclass
class CancelRequest:
    """Stop the running job `id` (any running job when empty); answered by a CancelledEvent."""

    type: ClassVar[str] = "cancel"
    id: str = ""


@dataclass
class ShutdownRequest:
    """Cancel whatever runs and exit. Closing stdin does the same."""

    type: ClassVar[str] = "shutdown"
    id: str = ""


REQUESTS = {cls.type: cls for cls in (PingRequest, ReconstructRequest, AlignRequest, WeightsRequest, CancelRequest,
                                      ShutdownRequest)}


# Events (engine -> client)


@dataclass
class PongEvent:
    type: ClassVar[str] = "pong"
    id: str
    protocol: int = PROTOCOL_VERSION
    engine_version: str = ""
    pid: int = 0
    busy: bool = False


@dataclass
class ProgressEvent:
    """stage names what runs now (e.g. "diffusion", "poses"); fraction in [0, 1] is how far that stage is
    (the alignment's stages "cameras", "poses" and "depth" share one fraction for the whole alignment)."""

    type: ClassVar[str] = "progress"
    id: str
    stage: str
    fraction: float


@dataclass
class LogEvent:
    """Something the artist should know about the job: level "info" (e.g. where the model runs) or
    "warning" (e.g. the model runs on the CPU, the alignment distrusted some windows)."""

    type: ClassVar[str] = "log"
    id: str
    level: str
    message: str


@dataclass
class ResultEvent:
    """The job finished: `bundle` is the absolute path of the complete bundle folder."""

    type: ClassVar[str] = "result"
    id: str
    bundle: str
    seconds: float = 0.0


@dataclass(frozen=True)
class WeightsEvent(WeightsState):
    """The state of a model's weights after a `weights` request: the fields of engine.models.weights.WeightsState
    (model, label, model_dir, state "verified" / "missing" / "broken", problem, fix, licences: the text `download`
    shows), and the request's id."""

    type: ClassVar[str] = "weights"
    id: str = ""


@dataclass
class ErrorEvent:
    """The job (or a request) failed; nothing was written. problem says what, fix what to do."""

    type: ClassVar[str] = "error"
    id: str
    problem: str
    fix: str = ""


@dataclass
class CancelledEvent:
    """The job stopped on request; nothing was written."""

    type: ClassVar[str] = "cancelled"
    id: str


EVENTS = {cls.type: cls for cls in (PongEvent, ProgressEvent, LogEvent, ResultEvent, WeightsEvent, ErrorEvent,
                                    CancelledEvent)}


def encode(message) -> str:
    """A request or event as one JSON line (without the newline)."""
    return json.dumps({"type": message.type, **asdict(message)})


# Far deeper than any request, about where Python 3.11's parser gives up; Python's own limit differs between
# versions (3.13 parses lines that 3.11 refuses with a RecursionError), so the protocol sets its own.
MAX_NESTING = 1000


def _nesting(obj) -> int:
    """How deeply lists and objects nest in `obj` (0 for a scalar), counted without recursion; stops past
    MAX_NESTING."""
    deepest, stack = 0, [(obj, 1)]
    while stack and deepest <= MAX_NESTING:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def decode(line: str, table: dict):
    """Parse one line into the dataclass of `table` (REQUESTS or EVENTS) its "type" names."""
    try:
        obj = json.loads(line)
        too_deep = _nesting(obj) > MAX_NESTING
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not a JSON line: {exc}", "send one JSON object per line") from None
    except RecursionError:
        too_deep = True
    if too_deep:
        raise ProtocolError("the JSON line is nested too deeply to read",
                            "send one flat JSON object per line (docs/protocol.md)")
    if not isinstance(obj, dict) or obj.get("type") not in table:
        raise ProtocolError(f"unknown message type {obj.get('type') if isinstance(obj, dict) else obj!r}",
                            f"use one of: {', '.join(table)}")
    return build(table[obj.pop("type")], obj)


def request_id(line: str) -> str:
    """The "id" of a request line that decode refused, where the line is a JSON object with a string id;
    else "" (the error then answers no particular request)."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return ""
    found = obj.get("id") if isinstance(obj, dict) else None
    return found if isinstance(found, str) else ""


def build(cls, values: dict):
    """cls(**values) for a dataclass, refusing unknown or missing fields with a clear ProtocolError, and values
    outside their option's range or choices (nested options too) with an InputError (engine.options.check)."""
    what = getattr(cls, "type", cls.__name__)
    if not isinstance(values, dict):
        raise ProtocolError(f"'{what}' must be a JSON object, not {type(values).__name__}",
                            "see docs/protocol.md for its fields")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ProtocolError(f"'{what}' has no field(s) {', '.join(unknown)}",
                            f"its fields are: {', '.join(sorted(names))} (if a newer Parallax add-on sent it, "
                            "update the engine)")
    try:
        message = cls(**values)
    except TypeError as exc:
        raise ProtocolError(f"'{what}': {exc}", "see docs/protocol.md for the required fields") from None
    try:
        check(message)
    except InputError as exc:
        raise ProtocolError(exc.problem, exc.fix) from None
    return message
