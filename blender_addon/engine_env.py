"""The engine's isolated Python environment: a venv made with a base Python and the engine's requirements.

One environment serves every Blender version: it lives in a per-user data folder (`data_root()`), not in
Blender's versioned extension folder, in a folder named after the Python version that made it
(`engine-py3.13`). The engine runs in its own process, so any complete environment works for any Blender:
after a Blender upgrade the add-on finds and reuses the one it made before (`find_environment`).

No bpy here. The builder runs in a background thread with a stage and a fraction the preferences panel shows;
every step is a subprocess started from an argument list. Network use is the caller's decision
(the add-on checks bpy.app.online_access before starting one).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .engine_process import EngineUnavailable

# Written last by a successful build: what the environment was made from and with.
MARKER = "parallax-env.json"
MIN_PYTHON = (3, 11)
CREATE_FIX = "press 'Create Engine Environment' in the Parallax add-on preferences"


def data_root() -> Path:
    """The per-user folder every Blender version shares: $PARALLAX_DATA_DIR, else the platform's data folder
    (Linux $XDG_DATA_HOME/parallax or ~/.local/share/parallax, macOS ~/Library/Application Support/Parallax,
    Windows %LOCALAPPDATA%\\Parallax)."""
    if os.environ.get("PARALLAX_DATA_DIR"):
        return Path(os.environ["PARALLAX_DATA_DIR"])
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "Parallax"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Parallax"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "parallax"


def python_version(python: str) -> tuple[int, int]:
    """(major, minor) of the interpreter `python`; EngineUnavailable when it does not run or is too old."""
    try:
        out = subprocess.run([str(python), "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=60, check=True).stdout
        version = tuple(int(part) for part in out.split())
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise EngineUnavailable(f"cannot run the base Python '{python}': {exc}",
                                "set 'Base Python' to a Python 3.11 or later (empty: Blender's own)") from None
    if version < MIN_PYTHON:
        raise EngineUnavailable(f"the base Python '{python}' is Python {version[0]}.{version[1]}; the engine needs "
                                "3.11 or later", "set 'Base Python' to a Python 3.11 or later")
    return version


def env_dir(root: Path, version: tuple[int, int]) -> Path:
    """The environment a base Python of `version` makes under `root`."""
    return Path(root) / f"engine-py{version[0]}.{version[1]}"


PYTORCH_INDEX = "https://download.pytorch.org/whl"
CUDA_WHEELS = "cu128"  # PyTorch's CUDA 12.8 build: NVIDIA drivers 570 and later


def torch_source(platform: str, nvidia_gpu: bool) -> tuple[list[str], str]:
    """(pip arguments, what they give) for the engine's PyTorch on `platform` (sys.platform).

    PyPI's default torch is a CUDA build on Linux (several GB) and a CPU build on Windows; PyTorch's own index
    (an extra index: the other packages still come from PyPI) has the CUDA build for Windows and a lean CPU build
    for Linux. macOS gets PyPI's build, which runs on Apple Silicon's GPU (MPS)."""
    if platform == "darwin":
        return [], "PyTorch from PyPI (Apple Silicon GPU via MPS, else CPU)"
    if platform == "win32":
        if nvidia_gpu:
            return ["--extra-index-url", f"{PYTORCH_INDEX}/{CUDA_WHEELS}"], f"PyTorch's CUDA build ({CUDA_WHEELS})"
        return [], "PyTorch's CPU build from PyPI (no NVIDIA GPU found)"
    if nvidia_gpu:
        return [], "PyTorch's CUDA build from PyPI"
    return ["--extra-index-url", f"{PYTORCH_INDEX}/cpu"], "PyTorch's CPU build (no NVIDIA GPU found)"


def nvidia_gpu() -> bool:
    """Whether an NVIDIA driver lists a GPU here (nvidia-smi -L)."""
    smi = shutil.which("nvidia-smi")
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30) if smi else None
    except (OSError, subprocess.SubprocessError):
        return False
    return listed is not None and listed.returncode == 0 and "GPU" in listed.stdout


@dataclass(frozen=True)
class EnvStatus:
    """state: "found" (env_dir is complete and its Python runs), "missing" or "broken" (problem and fix say why)."""

    state: str
    env_dir: Path | None
    problem: str = ""
    fix: str = ""

    @property
    def python(self) -> Path | None:
        return env_python(self.env_dir) if self.env_dir is not None else None


def check_environment(folder: Path, requirements: list[str]) -> EnvStatus:
    """Is `folder` a complete environment with these requirements whose Python still runs?"""
    try:
        made = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return EnvStatus("broken", folder, f"the engine environment in {folder} is incomplete (its creation was "
                                           "interrupted or failed)", f"{CREATE_FIX} to finish it")
    if made.get("requirements") != list(requirements):
        return EnvStatus("broken", folder, f"the engine environment in {folder} was made for other engine "
                                           "requirements (an earlier Parallax)", f"{CREATE_FIX} to update it")
    if not _runs(env_python(folder)):
        return EnvStatus("broken", folder, f"the Python of the engine environment in {folder} no longer runs (the "
                                           f"Python it was made from, {made.get('base_python')}, may have gone with "
                                           "an older Blender)", f"{CREATE_FIX} to make it again")
    return EnvStatus("found", folder)


def find_environment(root: Path, requirements: list[str]) -> EnvStatus:
    """The environment to use: the complete one under `root` of the newest Python, whichever Blender made it;
    else the first broken one (with its fix), else "missing"."""
    folders = [f for f in Path(root).glob("engine-py*") if f.is_dir() and _folder_version(f) is not None]
    broken = None
    for folder in sorted(folders, key=_folder_version, reverse=True):
        status = check_environment(folder, requirements)
        if status.state == "found":
            return status
        broken = broken or status
    return broken or EnvStatus("missing", None, f"no engine environment in {root} yet", CREATE_FIX)


def _folder_version(folder: Path) -> tuple[int, int] | None:
    match = re.fullmatch(r"engine-py(\d+)\.(\d+)", folder.name)
    return (int(match[1]), int(match[2])) if match else None


def _runs(python: Path) -> bool:
    try:
        return subprocess.run([str(python), "-c", "pass"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def read_requirements(root: Path) -> list[str]:
    """The engine's requirements: requirements.txt in the extension, or, when developing, the pyproject.toml beside
    the engine package (`root/engine` may be a link into the repository)."""
    txt = root / "requirements.txt"
    if txt.is_file():
        return [line.strip() for line in txt.read_text().splitlines() if line.strip() and not line.startswith("#")]
    pyproject = (root / "engine").resolve().parent / "pyproject.toml"
    return list(tomllib.loads(pyproject.read_text())["project"]["dependencies"])


def env_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


class EnvBuilder:
    """Create `env_dir` with `base_python -m venv` and pip-install `requirements` into it, in a thread; on success
    write its MARKER (removed first, so an interrupted build leaves a "broken" environment, not a "found" one).
    An existing environment is updated in place, or made again (--clear) when its Python no longer runs.

    state: "running", "done", "failed" or "cancelled"; stage/fraction say how far it got; message explains
    a failure (with the last lines pip printed).
    """

    def __init__(self, base_python: str, env_dir: Path, requirements: list[str], pip_args: list[str] = ()):
        self.base_python = str(base_python)
        self.env_dir = Path(env_dir)
        self.requirements = list(requirements)
        self.pip_args = list(pip_args)  # e.g. torch_source's index
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
        python = env_python(self.env_dir)
        (self.env_dir / MARKER).unlink(missing_ok=True)
        clear = ["--clear"] if python.exists() and not _runs(python) else []
        python = str(python)
        steps = [("creating the environment", [self.base_python, "-m", "venv", *clear, str(self.env_dir)])]
        if self.requirements:
            steps.append(("installing packages",
                          [python, "-m", "pip", "install", "--disable-pip-version-check", *self.pip_args,
                           *self.requirements]))
        for number, (stage, argv) in enumerate(steps):
            self.stage, self.fraction = stage, number / len(steps)
            ok, tail = self._step(argv, number, len(steps))
            if self._cancelled:
                self.state, self.message = "cancelled", "cancelled; the environment may be incomplete"
                return
            if not ok:
                self.state, self.message = "failed", f"{stage} failed:\n{tail}"
                return
        try:
            made = {"base_python": self.base_python, "python": ".".join(map(str, python_version(python))),
                    "requirements": self.requirements}
            (self.env_dir / MARKER).write_text(json.dumps(made, indent=1) + "\n")
        except (EngineUnavailable, OSError) as exc:
            self.state, self.message = "failed", f"checking the new environment failed: {exc}"
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
