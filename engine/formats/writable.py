"""Whether an output can be written at all, asked before any slow work (loading a model, reading a clip,
downloading): a read-only disk, a folder without write permission or a disk without a free inode is named up
front instead of failing after minutes. Standard library only."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import InputError


def check_writable(target: str | os.PathLike, option: str = "--out") -> None:
    """InputError unless a folder can be made next to `target` (in its nearest existing parent, where the
    staged output will go); the probe folder is removed at once."""
    target = Path(target).expanduser().absolute()
    parent = next(folder for folder in target.parents if folder.exists() or folder == folder.parent)
    if not parent.is_dir():
        raise InputError(f"{parent} is not a folder, so {target} cannot be made",
                         f"choose a folder for {option} whose parent is a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".parallax-probe-", dir=parent))
    except OSError as exc:
        raise InputError(f"cannot write in {parent} ({exc.strerror or exc}), where {target} would go",
                         f"choose a writable folder for {option}, or make this one writable (a read-only disk, "
                         "missing permissions or a full disk)") from None
