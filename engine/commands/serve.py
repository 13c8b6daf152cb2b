"""`python -m engine serve`: speak the JSON-lines protocol on stdin/stdout (docs/protocol.md)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from ..protocol.server import Server


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Speak the JSON-lines protocol on stdin/stdout (see docs/protocol.md)."


def run(args: argparse.Namespace) -> int:
    return Server(_take_stdout()).serve(sys.stdin)


def _take_stdout() -> TextIO:
    """Reserve the real stdout for protocol lines; everything else printed (ours, libraries', C code's) goes
    to stderr, so a stray print can never corrupt the protocol."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "w", encoding="utf-8", buffering=1)
