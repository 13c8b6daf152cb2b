"""Build the installable Blender extension: dist/parallax-<version>.zip.

    python build_addon.py [--out DIR]

The zip holds blender_addon/ at its root (blender_manifest.toml first), the engine sources as the
`engine/` folder beside it (the add-on runs them as `python -m engine serve` in the engine's own
environment, and imports engine.errors and engine.formats through engine_link.py) and requirements.txt,
the engine's dependencies from pyproject.toml. The engine's development tools (DEV_ONLY: benchmarks,
synthetic scenes, golden-fixture checks) stay out. The manifest is validated before anything is written.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "blender_addon"
ENGINE = ROOT / "engine"
REQUIRED = ("schema_version", "id", "version", "name", "tagline", "maintainer", "type", "blender_version_min",
            "license")
SKIP_DIRS = {"__pycache__", ".pytest_cache"}
# Engine folders and files the extension never runs (relative to engine/).
DEV_ONLY = ("bench", "synthetic", "models/geo4d/checks", "models/geo4d/check_fixtures.py")


class BuildError(Exception):
    pass


def validate_manifest(manifest: dict, project_version: str) -> None:
    """The checks Blender would make at install time that we can make earlier, plus our own version rule."""
    missing = [key for key in REQUIRED if key not in manifest]
    if missing:
        raise BuildError(f"blender_manifest.toml lacks {', '.join(missing)}")
    if manifest["schema_version"] != "1.0.0" or manifest["type"] != "add-on" or manifest["id"] != "parallax":
        raise BuildError("blender_manifest.toml must say schema_version 1.0.0, type add-on, id parallax")
    if manifest["version"] != project_version:
        raise BuildError(f"blender_manifest.toml version {manifest['version']} differs from pyproject.toml's "
                         f"{project_version}: set both to the same version")
    if not re.fullmatch(r"\d+\.\d+\.\d+", manifest["blender_version_min"]):
        raise BuildError("blender_version_min must be X.Y.Z")
    if len(manifest["tagline"]) > 64 or manifest["tagline"].endswith((".", "!", "?")):
        raise BuildError("the tagline must be at most 64 characters without closing punctuation")
    for name, reason in manifest.get("permissions", {}).items():
        if not reason or len(reason) > 64 or reason.endswith("."):
            raise BuildError(f"permission '{name}' needs a reason of at most 64 characters, no closing period")


def source_files(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not SKIP_DIRS.intersection(path.relative_to(folder).parts) and path.suffix != ".pyc":
            yield path


def build(out_dir: Path) -> Path:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    manifest_text = (ADDON / "blender_manifest.toml").read_text()
    manifest = tomllib.loads(manifest_text)
    validate_manifest(manifest, project["version"])
    requirements = "\n".join(project["dependencies"]) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    tmp = target.with_suffix(".zip.part")
    counts = {"add-on": 0, "engine": 0}
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("blender_manifest.toml", manifest_text)
        for path in source_files(ADDON):
            if path.name != "blender_manifest.toml":
                z.write(path, path.relative_to(ADDON).as_posix())
                counts["add-on"] += 1
        for path in source_files(ENGINE):
            name = path.relative_to(ENGINE).as_posix()
            if not any(name == d or name.startswith(f"{d}/") for d in DEV_ONLY):
                z.write(path, ("engine" / path.relative_to(ENGINE)).as_posix())
                counts["engine"] += 1
        z.writestr("requirements.txt", requirements)
    tmp.replace(target)
    print(f"built {target} ({target.stat().st_size / 1024:.0f} KiB): Parallax {manifest['version']} for Blender "
          f">= {manifest['blender_version_min']}, {counts['add-on']} add-on files, {counts['engine']} engine files, "
          f"{len(project['dependencies'])} requirements")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="folder for the zip (default dist/)")
    args = parser.parse_args(argv)
    try:
        build(args.out)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
