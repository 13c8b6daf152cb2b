"""Write a file or folder so that it appears complete or not at all.

The data goes to a temporary sibling first (same file system, so the final rename is atomic);
a failure removes the temporary and leaves whatever was at the target untouched.
Standard library only, so the Blender add-on can use it too.

The temporaries get the user's umask like anything else they write (not tempfile's private 0700/0600):
studios share bundles and model folders, so the group may read what the user may.
"""

from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


def _sibling(target: Path) -> Path:
    """A hidden name next to `target` (64 random bits: creating it exclusively fails rather than reuse one)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(8)}")


@contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to `target`; on success it replaces `target`.

    An old folder at `target` is removed only after the new one has been moved into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target)
    tmp.mkdir()
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(old, target)  # the promise: a failure leaves the old folder in place
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def staged_file(target: Path) -> Iterator[BinaryIO]:
    """Yield a binary file open for writing next to `target`; on success it is renamed to `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target)
    f = open(tmp, "xb")
    try:
        with f:
            yield f
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
