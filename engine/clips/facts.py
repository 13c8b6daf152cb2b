"""What a clip holds, found by decoding every frame once without keeping them: frame count (decoded and
declared by the container), rate, size, per-frame timestamps, and the problems those show (`inspect`).

The same readers as reconstruct (engine/clips/video.py, images.py), so what is counted here is what a
reconstruction of the clip would get.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..formats.sequence import find_sequence, is_image_sequence
from .images import read_image
from .video import DEFAULT_FPS, clip_fps, no_frames, open_video, shortfall_text, size_mismatch

# Frame intervals further than this from the median (relative, and at least VFR_MIN_MS) make a clip variable-rate:
# containers round timestamps to their time base, which moves an interval by a fraction of a millisecond.
VFR_TOLERANCE = 0.05
VFR_MIN_MS = 0.5


@dataclass
class ClipFacts:
    """A clip as the engine reads it.

    Attributes:
        path: the clip (a video file, an image sequence's folder or one of its frames).
        kind: "video" or "image sequence".
        size: (H, W) of its frames in pixels.
        decoded: frames the engine's reader decoded.
        declared: frames the container's header declares; None where it states none (image sequences: the files).
        fps: frames per second the engine uses: the file's rate, else the rate passed, else 24.
        fps_source: where `fps` comes from: "file", "--fps" (passed) or "default".
        timestamps_ms: float64[decoded], each frame's presentation time from the container (videos), else None.
        files: the image sequence's first and last file names, else None.
    """

    path: Path
    kind: str
    size: tuple[int, int]
    decoded: int
    declared: int | None
    fps: float
    fps_source: str
    timestamps_ms: np.ndarray | None = field(default=None, repr=False)
    files: tuple[str, str] | None = None

    @property
    def duration_s(self) -> float:
        """Seconds the frames last at `fps` (how the engine times them)."""
        return self.decoded / self.fps

    def intervals_ms(self) -> np.ndarray | None:
        """float64[decoded - 1]: milliseconds between consecutive frames' timestamps; None without timestamps."""
        if self.timestamps_ms is None or len(self.timestamps_ms) < 2:
            return None
        return np.diff(self.timestamps_ms)

    def variable_rate(self) -> str | None:
        """A sentence when the timestamps show a variable frame rate, else None."""
        steps = self.intervals_ms()
        if steps is None:
            return None
        median = float(np.median(steps))
        off = np.abs(steps - median) > max(VFR_MIN_MS, VFR_TOLERANCE * median)
        if not off.any():
            return None
        return (f"variable frame rate: {int(off.sum())} of {len(steps)} frame intervals differ from the median "
                f"{median:.2f} ms (they range from {steps.min():.2f} to {steps.max():.2f} ms); the engine times every "
                f"frame at {self.fps:g} fps, so motion between frames is uneven: convert the clip to a constant rate "
                f"first (e.g. ffmpeg -i CLIP -vsync cfr -r {self.fps:g} OUT.mp4)")

    def problems(self) -> list[str]:
        """Sentences about what is wrong or doubtful in the clip itself (empty when nothing is)."""
        found = []
        if self.declared is not None and self.decoded != self.declared:
            found.append(shortfall_text(self.decoded, self.declared, 0) if self.decoded < self.declared else
                         f"{self.decoded} frames decoded, more than the {self.declared} the clip's header declares "
                         "(a damaged header): check the clip plays to its end in a video player")
        vfr = self.variable_rate()
        if vfr:
            found.append(vfr)
        if self.fps_source == "default":
            found.append(f"the clip stores no frame rate: {self.fps:g} fps is assumed (it only labels the animation; "
                         "pass --fps with the real rate)")
        h, w = self.size
        if h % 2 or w % 2:
            found.append(f"odd frame size {w}x{h}: an odd number of pixels across is unusual for footage "
                         "(a crop or a damaged header?); check it is the plate you meant")
        return found


def clip_facts(path: str | Path, fps: float | None = None) -> ClipFacts:
    """Decode every frame of a video or image sequence once (nothing is kept) and return what it holds.
    fps: the rate where the clip stores none (image sequences); None: 24. InputError when it cannot be read."""
    path = Path(path)
    if is_image_sequence(path):
        return _sequence_facts(path, fps)
    cap = open_video(path)
    try:
        stored = float(cap.get(cv2.CAP_PROP_FPS))
        rate = clip_fps(cap, fps)
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        declared = int(count) if np.isfinite(count) and count > 0 else None
        ok, frame = cap.read()
        if not ok or frame is None:
            raise no_frames(path)
        size = frame.shape[:2]
        stamps = [cap.get(cv2.CAP_PROP_POS_MSEC)]
        while cap.grab():  # decodes the frame (without converting it to BGR)
            stamps.append(cap.get(cv2.CAP_PROP_POS_MSEC))
    finally:
        cap.release()
    source = "file" if np.isfinite(stored) and stored > 0 else "--fps" if fps else "default"
    return ClipFacts(path, "video", size, len(stamps), declared, rate, source, np.asarray(stamps, np.float64))


def _sequence_facts(path: Path, fps: float | None) -> ClipFacts:
    files = find_sequence(path).files
    size = read_image(files[0]).shape[:2]
    for index in range(1, len(files)):
        other = read_image(files[index]).shape[:2]
        if other != size:
            raise size_mismatch(files, index, other, size)
    return ClipFacts(path, "image sequence", size, len(files), None, fps or DEFAULT_FPS,
                     "--fps" if fps else "default", files=(files[0].name, files[-1].name))
