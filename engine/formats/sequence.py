"""Finding the files of an image sequence (frame.0001.exr, frame.0002.exr, ...).

Standard library only: the Blender add-on uses it too, where OpenCV is not installed.
A numbered file's name is split, as Blender does, around its last group of digits: head, number, tail.
Its sequence is every file in the same folder with the same head and tail whose number is written the
same way (zero-padded to the same width, or wider without a leading zero), sorted by number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

# Formats the engine decodes (engine/clips/images.py), and still-image formats it recognises but does not.
SUPPORTED_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".exr")
UNSUPPORTED_SUFFIXES = (".dpx", ".cin", ".tga", ".hdr", ".webp", ".jp2", ".psd", ".sgi", ".rgb", ".gif")
SUPPORTED_TEXT = "PNG, TIFF, JPEG, BMP (8 or 16 bit) and OpenEXR"

_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


@dataclass(frozen=True)
class Sequence:
    """The files of an image sequence, frame index 0 first.

    Attributes:
        files: the image files in frame order, one per frame.
        numbers: the frame number in each file's name (consecutive; 0 for a lone unnumbered file).
    """

    files: tuple[Path, ...]
    numbers: tuple[int, ...]


def is_image_sequence(path: str | Path) -> bool:
    """True when `path` names an image sequence (a folder, or a still image file) rather than a video."""
    path = Path(path)
    return path.is_dir() or path.suffix.lower() in SUPPORTED_SUFFIXES + UNSUPPORTED_SUFFIXES


def find_sequence(path: str | Path) -> Sequence:
    """The sequence `path` belongs to (a numbered image file), or the one sequence a folder holds.

    InputError when the folder holds no or several sequences, the format is not supported, or a frame
    number is missing between the first and the last."""
    path = Path(path)
    if path.is_dir():
        files = _folder_sequence(path)
    elif path.is_file():
        files = _siblings(path)
    else:
        raise InputError(f"image sequence {path} does not exist", "pass a folder of frames or one frame's file")
    _check_format(files[0])
    numbers = [_split(f.name)[1] if _split(f.name) else 0 for f in files]
    for (previous, before), (number, file) in zip(zip(numbers, files), zip(numbers[1:], files[1:])):
        if number != previous + 1:
            missing = previous + 1
            raise InputError(f"frame {missing} of the image sequence {file.parent} is missing "
                             f"(the numbering jumps from {before.name} to {file.name})",
                             f"render or copy frame {missing} again, or rename the files so they are numbered "
                             "without gaps")
    return Sequence(tuple(files), tuple(numbers))


def _split(name: str) -> tuple[str, int, str, str] | None:
    """(head, number, tail, digits) of a file name with a number before its tail, else None."""
    stem, dot, suffix = name.rpartition(".")
    match = _NUMBERED.match(stem if dot else name)
    if match is None:
        return None
    head, digits, rest = match.groups()
    return head, int(digits), rest + dot + suffix if dot else rest, digits


def _same_pattern(digits: str, width: int) -> bool:
    # What Blender's "%0*d" writes for a frame number at this padding width.
    return len(digits) == width or (len(digits) > width and not digits.startswith("0"))


def _siblings(file: Path) -> list[Path]:
    parts = _split(file.name)
    if parts is None:
        return [file]  # an unnumbered image is a sequence of one frame
    head, _, tail, digits = parts
    found = []
    for other in file.parent.iterdir():
        other_parts = _split(other.name)
        if (other_parts and other_parts[0] == head and other_parts[2] == tail
                and _same_pattern(other_parts[3], len(digits)) and other.is_file()):
            found.append((other_parts[1], other))
    return [f for _, f in sorted(found)]


def _folder_sequence(folder: Path) -> list[Path]:
    groups: dict[tuple[str, str], list[Path]] = {}
    for file in folder.iterdir():
        parts = _split(file.name)
        if parts and not file.name.startswith(".") and file.is_file():
            groups.setdefault((parts[0], parts[2]), []).append(file)
    if len(groups) != 1:
        names = ", ".join(sorted(f"{head}#{tail}" for head, tail in groups)) or "none"
        raise InputError(f"the folder {folder} holds {len(groups)} numbered image sequences ({names})",
                         "pass one frame's file of the sequence to read, or a folder holding only its frames")
    files = next(iter(groups.values()))
    return _siblings(min(files, key=lambda f: _split(f.name)[1]))


def _check_format(file: Path) -> None:
    if file.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise InputError(f"{file} is a {file.suffix or 'suffix-less'} file, not a supported image format",
                         f"convert the sequence to one of {SUPPORTED_TEXT} (e.g. 16-bit PNG or EXR)")
