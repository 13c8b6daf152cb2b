"""The export's output folder: written whole or not at all, and never over files Parallax did not write.

A finished export holds MARKER, which names the format and every file written. An existing --out is replaced
only when it is empty, or holds that marker and nothing the marker does not name; anything else is refused.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import InputError
from ..formats.atomic import staged_dir

MARKER = "parallax_export.json"
MARKER_FORMAT = "parallax.export"


def check_export_target(out_dir: str | Path, sources: list[Path]) -> Path:
    """The absolute out_dir, or InputError when an export may not be written there.

    sources: the inputs (bundle, clip), which must not lie inside out_dir (replacing it would delete them)."""
    out = Path(out_dir).absolute()
    for source in sources:
        if source.absolute().resolve().is_relative_to(out.resolve()):
            raise InputError(f"{source} lies inside the output folder {out}", "choose an output folder elsewhere")
    if not out.exists():
        return out
    if not out.is_dir():
        raise InputError(f"{out} exists and is not a folder", "choose a new output folder")
    present = {p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir()}
    if not present:
        return out
    try:
        marker = json.loads((out / MARKER).read_text())
        named = set(marker["files"]) | {MARKER}
        ok = marker.get("format") == MARKER_FORMAT and present <= named
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise InputError(f"{out} is not empty and holds files Parallax's export did not write",
                         "choose a new or empty output folder (an earlier export's folder is replaced)")
    return out


@contextmanager
def export_folder(out: Path, export_format: str, bundle: Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success it gets MARKER and replaces `out` (checked beforehand)."""
    with staged_dir(out) as tmp:
        yield tmp
        files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if not p.is_dir())
        (tmp / MARKER).write_text(json.dumps({"format": MARKER_FORMAT, "export": export_format,
                                              "bundle": str(bundle.absolute()), "files": files}, indent=1))
