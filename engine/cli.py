"""`python -m engine COMMAND ...`: a table of sub-commands, each in its own module.

Command `a-b` lives in `engine/commands/a_b.py`, which defines `add_arguments(parser)` and
`run(args) -> int`. It is imported only when its command runs, so `align` never pays for importing torch.
"""

import argparse
import importlib
import sys

from .errors import EngineError

COMMANDS = {
    "align": "fuse window predictions into a reconstruction bundle",
    "reconstruct": "run a model over a clip and write a bundle",
    "convert": "convert official checkpoints to a model directory",
    "download": "download a model's official checkpoints",
    "check-fixtures": "reproduce the golden fixtures of a folder (Geo4D, GeometryCrafter)",
    "serve": "speak the JSON-lines protocol on stdin/stdout (Blender)",
    "demo": "weight-free pipeline demo from simulated predictions",
}


def command_module(name: str) -> str:
    """The module of command `name`, relative to this package."""
    return f".commands.{name.replace('-', '_')}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    top = build_parser()
    if not argv or argv[0] not in COMMANDS:
        top.parse_args(argv)  # prints usage / error and exits
        return 2
    name = argv[0]
    try:
        module = importlib.import_module(command_module(name), __package__)
        parser = argparse.ArgumentParser(prog=f"python -m engine {name}", description=COMMANDS[name])
        module.add_arguments(parser)
        args = parser.parse_args(argv[1:])
        return int(module.run(args) or 0)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.split(".")[0] == __package__:
            raise  # our own module missing is a bug: keep the traceback
        # e.g. torch in an environment made with the torch-free requirements only
        print(f"error: `{name}` needs the package '{exc.name}', which this Python ({sys.executable}) lacks\n"
              "  fix: install the engine's requirements (pyproject.toml) into it", file=sys.stderr)
        return 2
