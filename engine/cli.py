"""`parallax COMMAND ...` (the console script, pyproject.toml) and `python -m engine COMMAND ...`: one table of
sub-commands, each in its own module, behind one entry point, `main`.

Command `a-b` lives in `engine/commands/a_b.py`, which defines `add_arguments(parser)` and
`run(args) -> int`. It is imported only when its command runs, so `align` never pays for importing torch.
"""

import argparse
import importlib
import signal
import sys
import threading

from .errors import EngineError
from .formats.atomic import remove_staging

COMMANDS = {
    "align": "fuse window predictions into a reconstruction bundle",
    "reconstruct": "run a model over a clip and write a bundle",
    "convert": "convert official checkpoints to a model directory",
    "download": "download a model's official checkpoints",
    "check-fixtures": "reproduce the golden fixtures of a folder (Geo4D, GeometryCrafter)",
    "serve": "speak the JSON-lines protocol on stdin/stdout (Blender)",
    "export": "export a bundle to COLMAP, nerfstudio, Nuke .chan, USD, a PLY cloud or plate-resolution depth",
    "demo": "weight-free pipeline demo from simulated predictions",
    "inspect": "what a clip holds and what reconstructing it would need (weights, GPU memory, time)",
}


def command_module(name: str) -> str:
    """The module of command `name`, relative to this package."""
    return f".commands.{name.replace('-', '_')}"


def build_parser(prog: str = "parallax") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None, prog: str = "parallax") -> int:
    """Run the command `argv` names (default: the command line); returns the exit status.
    prog: how the user called it, for usage lines ("parallax", or "python -m engine" from __main__)."""
    argv = sys.argv[1:] if argv is None else argv
    top = build_parser(prog)
    if not argv or argv[0] not in COMMANDS:
        top.parse_args(argv)  # prints usage / error and exits
        return 2
    name = argv[0]
    try:
        module = importlib.import_module(command_module(name), __package__)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(f"{__package__}."):
            return _missing_package(name, exc)
        # The Blender extension ships the engine without its development tools (build_addon.DEV_ONLY).
        print(f"error: `{name}` is not part of this engine build ({exc.name} is missing)\n"
              "  fix: run it from a checkout of the Parallax repository", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"{prog} {name}", description=COMMANDS[name])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _terminate) for sig in TERMINATING} if on_main_thread else {}
    try:
        return int(module.run(args) or 0)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: partly written output was removed on the way here
        remove_staging()
        print("interrupted: nothing was written", file=sys.stderr)
        return 128 + signal.SIGINT
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.split(".")[0] == __package__:
            raise  # our own module missing while running is a bug: keep the traceback
        return _missing_package(name, exc)
    except Terminated:
        remove_staging()  # what the signal cut short, also in a thread that had no time to clean up (serve)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# SIGTERM (the add-on's cancel, a render farm's job kill) and SIGHUP (the terminal closed).
TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _missing_package(command: str, exc: ModuleNotFoundError) -> int:
    """A third-party package the command needs is not installed (e.g. torch in an environment made with the
    torch-free requirements only): one clear line, not a traceback."""
    print(f"error: `{command}` needs the package '{exc.name}', which this Python ({sys.executable}) lacks\n"
          "  fix: install the engine's requirements (pyproject.toml) into it", file=sys.stderr)
    return 2


class Terminated(SystemExit):
    """A terminating signal arrived: the process exits with 128 + its number once the stack has unwound."""


def _terminate(signum, frame) -> None:
    """Unwind like an exception, so that partly written output is removed on the way out; then exit with
    the usual code 128 + signal."""
    raise Terminated(128 + signum)
