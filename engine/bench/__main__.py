"""`python -m engine.bench NAME [options]`: benchmarks that print figures. NAME is a key of BENCHMARKS.

Each module named here (relative to this package) defines `main(argv) -> int`; it is imported only
when its benchmark runs.
"""

import importlib
import sys

BENCHMARKS = {
    "align": ".align",
    "onnx-unet": ".onnx_unet",
    "model": ".model",
    "memory": ".memory",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: python -m engine.bench {{{','.join(BENCHMARKS)}}} [options]", file=sys.stderr)
        return 2
    return int(importlib.import_module(BENCHMARKS[argv[0]], __package__).main(argv[1:]) or 0)


sys.exit(main(sys.argv[1:]))
