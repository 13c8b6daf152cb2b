"""Counting the torch networks alive when an ONNX Runtime session opens: the `--runtime onnx` loaders must let
the torch copy of the weights go before ONNX Runtime reads its own (one copy in memory at a time)."""

from __future__ import annotations

import gc
from typing import Callable


def count_networks_at_sessions(monkeypatch, session_class: type, network_types: tuple[type, ...]
                               ) -> tuple[Callable[[], int], list[int]]:
    """(a count of the live objects of `network_types` now, the counts taken as each `session_class` opens):
    `session_class.__init__` is wrapped for the test's duration."""

    def networks() -> int:
        gc.collect()
        return sum(type(o) in network_types for o in gc.get_objects())

    alive_at_session: list[int] = []
    open_session = session_class.__init__

    def counting(self, *args, **kwargs):
        alive_at_session.append(networks())
        open_session(self, *args, **kwargs)

    monkeypatch.setattr(session_class, "__init__", counting)
    return networks, alive_at_session
