"""Where Parallax may read and write (docs/reliability.md).

- `contained`: a file a bundle or a windows folder names must lie inside that folder, symbolic links
  included, so a crafted scene.json cannot make the importer read /etc/passwd or another project's points.
- `check_replaceable`: an output folder is replaced only when Parallax wrote it: its format's marker file
  says so AND it holds nothing the format does not name. Anything else (a thesis, a plate, source code
  beside a file that happens to be called scene.json) is refused, never deleted.
- `check_outside`: no input (a clip, window predictions, checkpoints) may lie inside the output folder
  that a successful run replaces.

Standard library only, so the Blender add-on can use it too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

from .errors import InputError

# Files the operating system's file browsers drop into any folder they show; not an artist's work.
OS_CLUTTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def contained(root: Path, name, where: Path) -> Path:
    """root / name, or InputError when `name` (a relative path read from the file `where`) is not a
    non-empty relative path resolving inside `root` (after following symbolic links)."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise InputError(f"{where} names the file {name!r}, which is not a relative path",
                         "re-run the engine to rewrite the folder")
    path = Path(root) / name
    lexical = Path(os.path.normpath(path))
    if Path(name).is_absolute() or Path(os.path.normpath(root)) not in lexical.parents:
        why = "outside"
    elif not _resolves_inside(path, root):
        why = "outside (through a symbolic link)"
    elif path.exists() and not path.is_file():
        raise InputError(f"{where} names {name!r}, which is not a regular file (a folder, a pipe or a device)",
                         "re-run the engine to rewrite the folder")
    else:
        return path
    raise InputError(f"{where} names {name!r}, which lies {why} {root}",
                     "every file a Parallax folder names must be inside it; re-run the engine to rewrite it, "
                     "or copy the files into the folder")


def _resolves_inside(path: Path, root: Path) -> bool:
    return Path(root).resolve() in Path(path).resolve().parents


def check_replaceable(target: str | os.PathLike, kind: str, named_files: Callable[[Path], set[str] | None],
                      option: str = "--out") -> Path:
    """The absolute target, or InputError unless a new `kind` may replace it: it does not exist, is an
    empty folder, or is a folder Parallax wrote. named_files(folder) returns the relative paths (POSIX
    separators) of every file the format names there, or None when the folder's marker file does not
    say it is a `kind`; every entry of the folder must be one of them (or a parent folder of one). A
    name ending in "/" is a folder Parallax owns whole (a cache it fills itself)."""
    target = Path(target).expanduser().absolute()
    fix = (f"choose a new or empty folder for {option}; Parallax replaces only a folder it wrote itself, "
           "so that nothing else is ever deleted")
    if not target.exists() and not target.is_symlink():
        return target
    if target.is_symlink() or not target.is_dir():
        raise InputError(f"{target} exists and is not a folder", fix)
    if not any(target.iterdir()):
        return target
    named = named_files(target)
    if named is None:
        raise InputError(f"{target} exists and is not a {kind}", fix)
    extra = list(_unnamed(target, named))
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise InputError(f"{target} looks like a {kind} but also holds {shown}, which Parallax did not write",
                         f"move those out of the folder, or {fix}")
    return target


def written_by_parallax(folder: Path, named_files: Callable[[Path], set[str] | None]) -> bool:
    """Whether `folder` is one Parallax wrote: its marker says so and it holds nothing unnamed."""
    named = named_files(folder)
    return named is not None and next(iter(_unnamed(folder, named)), None) is None


def _unnamed(root: Path, named: set[str]) -> Iterable[str]:
    """Entries under root (relative POSIX paths) that are neither named, nor a folder on a named path,
    nor OS clutter. An unnamed folder is reported once, without its contents."""
    owned = {p[:-1] for p in named if p.endswith("/")}
    files_named = {p for p in named if not p.endswith("/")}
    folders = {p.rsplit("/", k)[0] for p in files_named for k in range(1, p.count("/") + 1)}
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        for d in list(dirs):
            rel = prefix + d
            if rel in owned and not (root / rel).is_symlink():
                dirs.remove(d)  # Parallax's own cache: whatever is in it is Parallax's
            elif (root / rel).is_symlink() or rel not in folders:
                dirs.remove(d)
                yield rel + ("" if (root / rel).is_symlink() else "/")
        for f in files:
            rel = prefix + f
            if rel not in files_named and f not in OS_CLUTTER:
                yield rel


def check_outside(out: str | os.PathLike, inputs: dict[str, str | os.PathLike | None],
                  option: str = "--out") -> None:
    """InputError when any input (by what it is, e.g. "clip") is the output folder or lies inside it:
    a successful run replaces that folder, and the input with it."""
    out = Path(out).expanduser()
    out_real = out.resolve()
    for what, path in inputs.items():
        if path is None:
            continue
        real = Path(path).expanduser().resolve()
        if real == out_real or out_real in real.parents:
            raise InputError(f"the {what} {path} lies inside the output folder {out}, which a successful run "
                             f"replaces (the {what} would be deleted with it)",
                             f"choose an {option} folder that does not hold the {what}, e.g. "
                             f"{out.parent / (out.name + '_new')}")
