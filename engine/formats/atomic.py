"""Write a file or folder so that it appears complete or not at all, even across crashes.

The data goes to a hidden staging sibling first (same file system, so the final rename is atomic),
is flushed to the disk (fsync of every file and folder), and is then renamed into place; a failure
removes the staging and leaves whatever was at the target untouched. Replacing a folder takes two
renames (old -> `.NAME.parallax-old`, staging -> NAME), then the old one is removed.

What a killed process leaves is tidied by the next write next to the same target (`recover`):
- staging is named `.NAME.parallax-<host>-<pid>-<random>`: one whose process is gone (same host, pid not
  running) is removed; staging of a running process, of another host, or not named so is never touched;
- a `.NAME.parallax-old` (or `.NAME.old`, written by earlier versions) whose NAME is missing (a crash
  between the two renames) is renamed back to NAME; when NAME is there, it is the leftover of a crash
  after the second rename and is removed. Both only when the caller's check says Parallax wrote it.
`remove_staging` removes this process's own staging (the engine calls it on SIGTERM, engine/cli.py).

Standard library only, so the Blender add-on can use it too.

Staging gets the user's umask like anything else they write (not tempfile's private 0700/0600): studios
share bundles and model folders, so the group may read what the user may.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from ..errors import EngineError, InputError

TAG = "parallax"
OLD_SUFFIX = f".{TAG}-old"
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
_STAGING = re.compile(rf"^\..+\.{TAG}-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[^/]+$")

# Staging folders and files of this process that are being written: staging path -> target.
_ACTIVE: dict[Path, Path] = {}
_ACTIVE_LOCK = threading.Lock()


def _prefix(target: Path) -> str:
    return f".{target.name}.{TAG}-{_HOST}-{os.getpid()}-"


def _staging(target: Path, suffix: str = "") -> Path:
    """A new staging name for `target` (64 random bits; made exclusively, so a clash fails rather than reuses)."""
    return target.with_name(f"{_prefix(target)}{secrets.token_hex(8)}{suffix}")


def old_path(target: Path) -> Path:
    """Where the previous folder waits between the two renames of a replacement."""
    return target.with_name(f".{target.name}{OLD_SUFFIX}")


def _pid_running(pid: int) -> bool:
    if os.name == "nt":
        return True  # os.kill(pid, 0) would terminate it on Windows: never judge, never clean there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale_staging(folder: Path) -> list[Path]:
    """Remove the staging that killed Parallax processes of this host left in `folder`; return what went."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _STAGING.match(entry.name)
        if not match or match["host"] != _HOST or _pid_running(int(match["pid"])):
            continue
        if int(match["pid"]) == os.getpid():
            continue  # a process's own staging is its own business
        _remove(entry)
        removed.append(entry)
    return removed


def recover(target: Path, is_ours: Callable[[Path], bool]) -> None:
    """Tidy what a killed write to `target` left (module docstring). is_ours(folder) says whether a
    folder is one Parallax wrote of the target's kind; nothing else is moved or removed."""
    target = Path(target).absolute()
    if not target.name:
        return  # the root folder: nothing is ever staged next to it
    remove_stale_staging(target.parent)
    for old in (old_path(target), target.with_name(f".{target.name}.old")):
        if not old.is_dir() or old.is_symlink() or not is_ours(old):
            continue
        if not target.exists() and not target.is_symlink():
            os.replace(old, target)  # the new one never arrived: the old one is the last complete output
            _sync_folder(target.parent)
        elif old.name.endswith(OLD_SUFFIX):
            _remove(old)  # the new one did arrive; this is the old one a crash kept from being removed
    old = old_path(target)
    if old.exists() or old.is_symlink():
        raise InputError(f"{old} is in the way: replacing {target} needs that name, and it holds files "
                         "Parallax did not write", f"move or rename {old}, then run again")


@contextmanager
def staged_dir(target: Path, is_ours: Callable[[Path], bool] = lambda folder: False) -> Iterator[Path]:
    """Yield an empty staging folder next to `target`; on success it replaces `target`.

    The caller has checked that `target` may be replaced (engine.paths.check_replaceable);
    is_ours is the same check as a predicate, for the leftovers `recover` tidies.
    An old folder at `target` is removed only after the new one has been moved into place."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target, is_ours)
    tmp = _staging(target)
    tmp.mkdir()
    _register(tmp, target)
    try:
        yield tmp
        _sync_tree(tmp)
        _publish(tmp, target)
    except Exception as exc:
        _remove(tmp)
        _raise_disk_error(exc, target)
        raise
    except BaseException:
        _remove(tmp)
        raise
    finally:
        _unregister(tmp)


def _publish(tmp: Path, target: Path) -> None:
    """Rename the complete staging `tmp` to `target`, replacing a folder there (module docstring)."""
    old = old_path(target)
    try:
        if target.exists():
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except BaseException:
                if not target.exists():
                    os.replace(old, target)  # the promise: a failure leaves the old folder in place
                raise
            _sync_folder(target.parent)
            _remove(old)
        else:
            os.replace(tmp, target)
            _sync_folder(target.parent)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
            raise
        raise EngineError(f"{target} changed while Parallax was putting its new output in place "
                          f"({exc.strerror}): another run may be writing the same folder",
                          "let the other run finish, then run again") from exc


_DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _raise_disk_error(exc: Exception, target: Path) -> None:
    """A full disk or quota is the user's to fix: say so (EngineError) instead of a traceback. Writers
    outside Python (safetensors, OpenEXR) raise their own exception types that carry the system's words."""
    words = str(exc)
    if (isinstance(exc, OSError) and exc.errno in _DISK_FULL) or any(
            os.strerror(code) in words or f"os error {code})" in words for code in _DISK_FULL):
        free = shutil.disk_usage(target.parent).free
        raise EngineError(f"the disk of {target.parent} is full ({free / 1e6:.1f} MB free) while writing "
                          f"{target.name}; nothing was changed at {target}",
                          "free disk space or write to a larger disk, then run again") from exc


@contextmanager
def staged_file(target: Path) -> Iterator[BinaryIO]:
    """Yield a binary file open for writing next to `target`; on success it is flushed and renamed to `target`."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target.parent)
    tmp = _staging(target, target.suffix)
    f = open(tmp, "xb")
    _register(tmp, target)
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        _sync_folder(target.parent)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        _raise_disk_error(exc, target)
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        _unregister(tmp)


def remove_staging() -> None:
    """Remove every staging folder or file this process is writing, and put back an old folder whose
    replacement was cut between the two renames. For a process about to exit on a signal; other
    threads may still be writing into the staging, so the removal is retried."""
    with _ACTIVE_LOCK:
        active = dict(_ACTIVE)
    for tmp, target in active.items():
        _remove(tmp)
        old = old_path(target)
        if old.is_dir() and not target.exists():
            os.replace(old, target)


def _register(tmp: Path, target: Path) -> None:
    with _ACTIVE_LOCK:
        _ACTIVE[tmp] = target


def _unregister(tmp: Path) -> None:
    with _ACTIVE_LOCK:
        _ACTIVE.pop(tmp, None)


def _remove(path: Path, tries: int = 5) -> None:
    """Remove a file or folder (a link itself, never what it points to); retried while another thread
    may still be adding files to it."""
    for _ in range(tries):
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        if not path.exists() and not path.is_symlink():
            return
        time.sleep(0.05)


def _sync_tree(root: Path) -> None:
    """fsync every file and folder under root, so that the rename publishes data that is on the disk."""
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _sync_folder(Path(folder))


def _sync_folder(folder: Path) -> None:
    if os.name == "nt":
        return  # folders cannot be opened for fsync on Windows; NTFS journals renames itself
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
