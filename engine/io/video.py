"""Reading a clip's frames with OpenCV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError


@dataclass
class Clip:
    """Frames of a video, resized on read.

    Attributes:
        frames: uint8[N, H, W, 3] sRGB frames at the requested size.
        frame_indices: int64[N], 0-based index of each frame in the file.
        fps: frames per second of the file.
    """

    frames: np.ndarray
    frame_indices: np.ndarray
    fps: float


def probe_video(path: str | Path) -> tuple[tuple[int, int], float]:
    """((H, W), fps) of a video without decoding it all; InputError when OpenCV cannot open it."""
    cap = _open(Path(path))
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            raise InputError(f"{path} has no decodable frames",
                             "check the file plays in a video player; re-encode it to H.264 MP4 if it does not")
        return frame.shape[:2], _fps(cap)
    finally:
        cap.release()


def read_video(path: str | Path, start: int = 0, stop: int | None = None,
               size: tuple[int, int] | None = None) -> Clip:
    """Decode frames [start, stop) of `path` (stop None = to the end), resized to size (H, W) if given."""
    path = Path(path)
    if start < 0 or (stop is not None and stop <= start):
        raise InputError(f"frame range {start}:{stop} is empty or negative", "pass --frames A:B with 0 <= A < B")
    cap = _open(path)
    try:
        fps = _fps(cap)
        frames, indices = [], []
        index = 0
        while stop is None or index < stop:
            if index < start:
                ok = cap.grab()  # skip without decoding
            else:
                ok, frame = cap.read()
            if not ok:
                break
            if index >= start:
                if size is not None:
                    frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                indices.append(index)
            index += 1
    finally:
        cap.release()
    if not frames:
        where = "" if start == 0 else f" from frame {start} (the file has {index})"
        raise InputError(f"{path} gave zero frames{where}",
                         "choose a frame range inside the clip, or re-encode the file to H.264 MP4")
    return Clip(np.stack(frames), np.asarray(indices, np.int64), fps)


def _open(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise InputError(f"video {path} does not exist", "pass the path of a video file")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise InputError(f"OpenCV cannot open {path} as a video",
                         "use a common format (H.264 MP4, MOV, AVI) or re-encode the file with ffmpeg")
    return cap


def _fps(cap: cv2.VideoCapture) -> float:
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    # Some containers store no rate; 24 is the film default and only labels the animation.
    return fps if np.isfinite(fps) and fps > 0 else 24.0
