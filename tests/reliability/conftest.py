"""The reliability battery's shared helpers (docs/reliability.md).

Every case checks one of two outcomes: a correct result, or one clear error (a problem and a fix, no
traceback), and in both cases that nothing outside the output changed and earlier outputs are
byte-identical. The helpers here make those checks one line each:

    before = snapshot(tmp_path)                   # every file's bytes, every link's target
    result = run_engine("align", windows, "--out", out)
    assert_clear_error(result, "not a Parallax bundle")
    assert_unchanged(tmp_path, before)            # or assert_unchanged(tmp_path, before, ignore=[out])

Faults are real: `small_disk` mounts a tmpfs of a given size and `read_only_folder` a read-only one (each
skipped with the reason where mounting is refused), `run_engine`/`start_engine` run `python -m engine` in a
subprocess that a test can signal.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def snapshot(root: str | os.PathLike) -> dict[str, tuple]:
    """What is under `root`, by relative path: ("dir",), ("file", size, sha256) or ("link", target).

    Links are recorded, never followed, so a snapshot sees a link changed or removed, not what it points to."""
    root = Path(root)
    tree: dict[str, tuple] = {}
    if not root.exists() and not root.is_symlink():
        return tree
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                tree[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                tree[rel] = ("dir",)
            else:
                tree[rel] = ("file", path.stat().st_size, _sha256(path))
    return tree


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    """Human-readable differences between two snapshots of the same root (empty when identical)."""
    out = [f"removed {p}" for p in sorted(before.keys() - after.keys())]
    out += [f"added {p}" for p in sorted(after.keys() - before.keys())]
    out += [f"changed {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    return out


def assert_unchanged(root: str | os.PathLike, before: dict[str, tuple],
                     ignore: list[str | os.PathLike] = ()) -> None:
    """Assert that `root` holds exactly what `before` recorded, except under the paths in `ignore`
    (the output a case is allowed to write)."""
    root = Path(root)
    skip = [Path(p).absolute().relative_to(root.absolute()).as_posix() for p in ignore]

    def kept(rel: str) -> bool:
        return not any(rel == s or rel.startswith(s + "/") for s in skip)

    after = snapshot(root)
    diff = changes({k: v for k, v in before.items() if kept(k)}, {k: v for k, v in after.items() if kept(k)})
    assert not diff, "files changed that the case must not touch:\n  " + "\n  ".join(diff[:20])


def run_engine(*args, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m engine ARGS` from the repository root; stdout and stderr captured as text."""
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=_engine_env(env))


def run_main(*args) -> subprocess.CompletedProcess:
    """`python -m engine ARGS` in this process (no interpreter start-up: for the many quick cases), with the
    same result as run_engine. An exception other than the CLI's own clear errors fails the test, as a
    traceback would."""
    from engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(["engine", *map(str, args)], code, out.getvalue(), err.getvalue())


def start_engine(*args, env: dict | None = None, **popen) -> subprocess.Popen:
    """`python -m engine ARGS` started in the background (to be signalled, or to speak `serve`'s protocol)."""
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-m", "engine", *map(str, args)], cwd=ROOT, text=True,
                            env=_engine_env(env), **popen)


def _engine_env(extra: dict | None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra or {})
    return env


def assert_clear_error(result: subprocess.CompletedProcess, *phrases: str) -> str:
    """Assert the engine refused with one clear message: exit 2, `error: PROBLEM` and `fix: ...` on stderr,
    no traceback, and each of `phrases` (case-insensitive) in the message. Returns the message."""
    message = result.stderr
    assert "Traceback" not in message, f"a traceback instead of a clear error:\n{message}"
    assert result.returncode == 2, f"exit code {result.returncode}, expected 2 (a clear error):\n{message}"
    assert "error:" in message and "fix:" in message, f"the error lacks a problem or a fix:\n{message}"
    for phrase in phrases:
        assert phrase.lower() in message.lower(), f"{phrase!r} is not in the error:\n{message}"
    return message


@pytest.fixture
def small_disk(tmp_path):
    """small_disk(bytes) -> Path: a fresh tmpfs of that size, unmounted after the test. Skips the test, with
    the reason, where mounting is refused (not root, or a container without the capability)."""
    mounted: list[Path] = []

    def make(size: int) -> Path:
        point = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(size)}", "tmpfs", str(point)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs for a full-disk case here: {result.stderr.strip() or 'refused'}")
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.fixture
def read_only_folder(tmp_path):
    """An empty folder on a read-only file system: a tmpfs mounted read-only (as a write-protected share or a
    full backup disk mounted read-only would be); root ignores permission bits, so chmod cannot stand in for
    it. Skips (with the reason) where mounting is refused."""
    point = tmp_path / "read-only"
    point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {result.stderr.strip() or 'refused'}")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the disk holding `folder` until at most `leave` bytes stay free (a file named `.filler`)."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(folder / ".filler", "wb") as f:
        try:
            f.write(b"\0" * max(0, free - leave))
            f.flush()
        except OSError:
            pass  # full: what we wanted
