"""Reading a clip's frames: a video file through OpenCV, or an image sequence (engine/formats/sequence.py):
a folder of numbered frames, or one numbered frame's file standing for its sequence."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..reporting import FIRST_FRAME, frame_numbers
from .images import read_image
from ..formats.sequence import find_sequence, is_image_sequence

DEFAULT_FPS = 24.0  # the film default, for clips that store no rate; it only labels the animation


@dataclass
class Clip:
    """Frames of a clip, resized on read.

    Attributes:
        frames: uint8[N, H, W, 3] sRGB frames at the requested size.
        frame_indices: int64[N], 0-based index of each frame in the clip (an image sequence's first file is 0).
        fps: frames per second of the file, or the fallback rate where it stores none.
    """

    frames: np.ndarray
    frame_indices: np.ndarray
    fps: float
    declared_frames: int | None = None

    def shortfall(self) -> str | None:
        """A warning when fewer frames decoded than the file's header declares for the range (a truncated or
        damaged file), else None. declared_frames: that count, None where the file states none."""
        if self.declared_frames is None or len(self.frames) >= self.declared_frames:
            return None
        return shortfall_text(len(self.frames), self.declared_frames, int(self.frame_indices[0]))


def shortfall_text(decoded: int, declared: int, first: int) -> str:
    """The warning for `decoded` frames of the `declared` ones from frame index `first` (0-based) on (decoded <
    declared), naming the missing frames as the artist counts them (engine.reporting.frame_numbers)."""
    missing = frame_numbers([first + decoded, first + declared - 1])
    return (f"only {decoded} of the {declared} frames the clip's header declares could "
            f"be decoded (frames {missing[0]}-{missing[1]} of the clip, counting from {FIRST_FRAME}, are missing): "
            "the file may be truncated or damaged; re-export or re-copy it for the whole shot")


def probe_video(path: str | Path, fps: float | None = None) -> tuple[tuple[int, int], float]:
    """((H, W), fps) of a clip without decoding it all; InputError when it cannot be read.
    fps: the rate where the clip stores none (image sequences); None: 24."""
    if is_image_sequence(path):
        return read_image(find_sequence(path).files[0]).shape[:2], fps or DEFAULT_FPS
    cap = open_video(Path(path))
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            raise no_frames(path)
        return frame.shape[:2], clip_fps(cap, fps)
    finally:
        cap.release()


def check_frame_range(path: str | Path, start: int, stop: int | None) -> None:
    """Refuse (InputError) a frame range [start, stop) that is empty, negative or starts after the clip's last
    frame, from the frame count a video's header declares or a sequence's files, without decoding the clip.
    A stop past the end reads to the end (a header's count can be off by a frame; Blender's may differ)."""
    _check_order(start, stop)
    count = _frame_count(Path(path))
    if count is not None and start >= count:
        raise InputError(f"frame range {start}:{'' if stop is None else stop} gives zero frames: {path} has "
                         f"{count} (0 to {count - 1})", f"pass --frames A:B with A below {count}")


def _check_order(start: int, stop: int | None) -> None:
    if start < 0 or (stop is not None and stop <= start):
        raise InputError(f"frame range {start}:{stop} is empty or negative", "pass --frames A:B with 0 <= A < B")


def _frame_count(path: Path) -> int | None:
    """The frames an image sequence has or a video's header declares; None where it declares none."""
    if is_image_sequence(path):
        return len(find_sequence(path).files)
    cap = open_video(path)
    try:
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    finally:
        cap.release()
    return int(count) if np.isfinite(count) and count > 0 else None


def read_video(path: str | Path, start: int = 0, stop: int | None = None,
               size: tuple[int, int] | None = None, fps: float | None = None) -> Clip:
    """Decode frames [start, stop) of `path` (stop None = to the end), resized to size (H, W) if given.
    fps: the rate where the clip stores none (image sequences); None: 24."""
    path = Path(path)
    _check_order(start, stop)
    if is_image_sequence(path):
        return _read_sequence(path, start, stop, size, fps or DEFAULT_FPS)
    cap = open_video(path)
    try:
        fps = clip_fps(cap, fps)
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        declared = (min(int(count), stop or int(count)) - start) if np.isfinite(count) and count > 0 else None
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
    return Clip(np.stack(frames), np.asarray(indices, np.int64), fps,
                declared if declared is not None and declared > 0 else None)


def _read_sequence(path: Path, start: int, stop: int | None, size: tuple[int, int] | None, fps: float) -> Clip:
    files = find_sequence(path).files
    if start >= len(files):
        raise InputError(f"{path} gave zero frames from frame {start} (the sequence has {len(files)})",
                         "choose a frame range inside the clip")
    first_size = read_image(files[0]).shape[:2]
    indices = range(start, len(files) if stop is None else min(stop, len(files)))
    frames = []
    for index in indices:
        frame = read_image(files[index])
        if frame.shape[:2] != first_size:
            raise size_mismatch(files, index, frame.shape[:2], first_size)
        if size is not None:
            frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        frames.append(frame)
    return Clip(np.stack(frames), np.arange(indices.start, indices.stop, dtype=np.int64), fps)


def size_mismatch(files: tuple[Path, ...], index: int, size: tuple[int, int], first: tuple[int, int]) -> InputError:
    """The error for frame `index` of an image sequence being (H, W) `size` where its first frame is `first`."""
    return InputError(f"frame {index} of the image sequence ({files[index].name}) is {size[1]}x{size[0]}, the first "
                      f"frame ({files[0].name}) is {first[1]}x{first[0]}",
                      "export every frame of the sequence at one size")


def no_frames(path: Path) -> InputError:
    return InputError(f"{path} has no decodable frames",
                      "check the file plays in a video player; re-encode it to H.264 MP4 if it does not")


def open_video(path: Path) -> cv2.VideoCapture:
    """An opened capture of the video file `path`; InputError when OpenCV cannot open it."""
    if not path.is_file():
        raise InputError(f"video {path} does not exist", "pass the path of a video file")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise InputError(f"OpenCV cannot open {path} as a video",
                         "use a common format (H.264 MP4, MOV, AVI) or re-encode the file with ffmpeg")
    return cap


def clip_fps(cap: cv2.VideoCapture, fallback: float | None) -> float:
    """The rate the file stores, else `fallback`, else 24."""
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    # The file's own rate wins; some containers store none.
    return fps if np.isfinite(fps) and fps > 0 else fallback or DEFAULT_FPS
