"""What the commands show while a job runs and when it has written a bundle (not a command itself).

On a terminal, progress is a tqdm bar per stage with its elapsed time and ETA, counting windows where the stage
runs window by window ("diffusion: window 3/13"); where stderr is not a terminal (the Blender add-on's engine log,
CI, a file) it is plain lines, one per whole percent. The summary goes to stdout.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

import numpy as np

from ..export.shot import SENSOR_WIDTH_MM
from ..formats.bundle import Bundle
from ..reporting import FIRST_FRAME, Plan, frame_numbers, frame_spans

# The stages whose fraction is the share of the windows done (engine.models.window_model.WindowModel.predict).
WINDOW_STAGES = ("diffusion",)
# The alignment's stages share one fraction (engine.protocol.messages.ProgressEvent): one bar.
ALIGNMENT_STAGES = ("cameras", "poses", "depth")


class ConsoleProgress:
    """The progress, log and plan callbacks of a job (engine.reporting), shown on `stream` (default stderr).
    The warnings it heard are kept for the summary. Use it as a context manager (the last bar is closed)."""

    def __init__(self, stream: TextIO | None = None, terminal: bool | None = None):
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.windows: int | None = None
        self.warnings: list[str] = []
        self._bar = None
        self._stage: str | None = None
        self._shown = -1

    def __enter__(self) -> ConsoleProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def plan(self, plan: Plan) -> None:
        self.windows = plan.windows

    def progress(self, stage: str, fraction: float) -> None:
        counted = stage in WINDOW_STAGES and self.windows is not None
        total = self.windows if counted else 100
        done = min(total, int(fraction * total + 1e-9))  # a whole window or percent, never ahead of the job
        group = "alignment" if stage in ALIGNMENT_STAGES else stage
        label = f"{group} ({stage})" if group != stage else stage
        if group != self._stage:
            self.close()
            self._stage, self._shown = group, -1
            if self.terminal:
                from tqdm import tqdm

                count = "window {n}/{total}" if counted else "{n}%"
                columns, lines = _screen(self.stream)
                self._bar = tqdm(total=total, desc=label, file=self.stream, ncols=columns, nrows=lines,
                                 bar_format="{desc}: {bar} " + count + " [{elapsed} elapsed, {remaining} to go]")
        if done == self._shown:
            return
        self._shown = done
        if self._bar is not None:
            self._bar.set_description_str(label, refresh=False)
            self._bar.update(done - self._bar.n)
        elif counted:
            print(f"{stage}: window {done}/{total}", file=self.stream, flush=True)
        else:
            print(f"{stage}: {done}%", file=self.stream, flush=True)

    def log(self, level: str, message: str) -> None:
        if level == "warning":
            self.warnings.append(message)
        line = f"{level}: {message}"
        if self._bar is not None:
            self._bar.write(line, file=self.stream)  # above the bar, which is drawn again below
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar, self._stage = None, None


def _screen(stream: TextIO) -> tuple[int, int]:
    """(columns, lines) of the terminal; 80 x 24 where it reports none (a terminal without a size, such as a bare
    pseudo-terminal: tqdm would hide its bar there)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return 80, 24
    return size.columns or 80, size.lines or 24


def summary(bundle: Bundle, warnings: list[str]) -> str:
    """What a written bundle holds, for the artist: frames, focal length (pixels and millimetres at the
    36 mm film back the exports and the Blender import use without a clip), the camera path's length, the
    warnings and where the files are."""
    h, w = bundle.image_size
    focal = np.array([frame.K[0, 0] for frame in bundle.frames])
    centres = np.array([frame.camera_to_world[:3, 3] for frame in bundle.frames])
    path = float(np.linalg.norm(np.diff(centres, axis=0), axis=1).sum())
    to_mm = SENSOR_WIDTH_MM / w
    if np.ptp(focal) <= 1e-6 * focal.max():
        focal_text = f"{focal[0]:.1f} px = {focal[0] * to_mm:.1f} mm"
    else:
        focal_text = (f"{focal.min():.1f}-{focal.max():.1f} px = {focal.min() * to_mm:.1f}-{focal.max() * to_mm:.1f}"
                      " mm, per frame")
    root = bundle.root.absolute()
    folders = sorted({frame.depth_path.parent.name for frame in bundle.frames}
                     | {frame.points_path.parent.name for frame in bundle.frames})
    numbers = frame_numbers(f.frame for f in bundle.frames)
    lines = [f"{len(bundle.frames)} frames ({frame_spans(numbers)} of the clip, counting from {FIRST_FRAME}) at "
             f"{w}x{h}",
             f"focal {focal_text} (film back {SENSOR_WIDTH_MM:g} mm wide)",
             f"camera path {path:.3g} scene units (relative: the models give depth up to scale)",
             f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}" + "".join(f"\n    {text}"
                                                                                      for text in warnings),
             f"files: {root} (scene.json, {', '.join(f + '/' for f in folders)}"
             + (", windows/)" if (root / "windows").is_dir() else ")")]
    return "\n".join(["done:", *(f"  {line}" for line in lines)])
