"""The engine's isolated Python environment: a venv made with a base Python and the engine's requirements.

No bpy here. Runs in a background thread with a stage and a fraction the preferences panel shows;
every step is a subprocess started from an argument list. Network use is the caller's decision
(the add-on checks bpy.app.online_access before starting one).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import tomllib
from pathlib import Path


def read_requirements(root: Path) -> list[str]:
    """The engine's requirements: requirements.txt in the extension, or pyproject.toml when developing."""
    txt = root / "requirements.txt"
    if txt.is_file():
        return [line.strip() for line in txt.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return list(tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"])


def env_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


class EnvBuilder:
    """Create `env_dir` with `base_python -m venv` and pip-install `requirements` into it, in a thread.

    state: "running", "done", "failed" or "cancelled"; stage/fraction say how far it got; message explains
    a failure (with the last lines pip printed).
    """

    def __init__(self, base_python: str, env_dir: Path, requirements: list[str]):
        self.base_python = str(base_python)
        self.env_dir = Path(env_dir)
        self.requirements = list(requirements)
        self.state = "running"
        self.stage = "creating the environment"
        self.fraction = 0.0
        self.message = ""
        self._proc: subprocess.Popen | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> EnvBuilder:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancelled = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        python = str(env_python(self.env_dir))
        steps = [("creating the environment", [self.base_python, "-m", "venv", str(self.env_dir)])]
        if self.requirements:
            steps.append(("installing packages",
                          [python, "-m", "pip", "install", "--disable-pip-version-check", *self.requirements]))
        for number, (stage, argv) in enumerate(steps):
            self.stage, self.fraction = stage, number / len(steps)
            ok, tail = self._step(argv, number, len(steps))
            if self._cancelled:
                self.state, self.message = "cancelled", "cancelled; the environment may be incomplete"
                return
            if not ok:
                self.state, self.message = "failed", f"{stage} failed:\n{tail}"
                return
        self.stage, self.fraction, self.state = "ready", 1.0, "done"

    def _step(self, argv: list[str], number: int, count: int) -> tuple[bool, str]:
        """Run one command, moving the fraction along as pip reports each requirement it collects."""
        lines: list[str] = []
        try:
            self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except OSError as exc:
            return False, str(exc)
        collected = 0
        for line in self._proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("Collecting ") and self.requirements:
                collected += 1
                share = min(collected / (2 * len(self.requirements)), 0.95)
                self.fraction = (number + share) / count
                self.stage = f"installing packages: {line.split()[1]}"
        return self._proc.wait() == 0, "\n".join(lines[-8:])
