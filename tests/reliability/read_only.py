"""A real read-only folder for the battery: a tmpfs mounted read-only (as a write-protected share or a full
backup disk mounted read-only would be). Root ignores permission bits, so chmod cannot stand in for it.

Use: `from tests.reliability.read_only import read_only_folder  # noqa: F401` in a test module."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture
def read_only_folder(tmp_path):
    """An empty folder on a read-only file system; skips (with the reason) where mounting is refused."""
    point = tmp_path / "read-only"
    point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {result.stderr.strip() or 'refused'}")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)
