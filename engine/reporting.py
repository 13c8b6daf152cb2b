"""How a long job reports to its caller (the CLI, the protocol server, the benchmarks).

Standard library only, so the protocol server can import it before torch or the alignment.
"""

from __future__ import annotations

from typing import Callable

Progress = Callable[[str, float], None]  # (stage, fraction of that stage done, in [0, 1])
Log = Callable[[str, str], None]  # (level "info" or "warning", a sentence for the artist)
