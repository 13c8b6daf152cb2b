"""Import a reconstruction bundle into a new .blend and render a preview picture, headless.

    .venv/bin/python scripts/bundle_to_blend.py BUNDLE SCENE.blend PREVIEW.png [--clip CLIP.mp4]

Runs the Blender add-on's importer in this Python's bpy (the venv has bpy 5.0.1), the same code the
File > Import menu uses; see blender_addon/importer/headless.py.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `blender_addon`

from blender_addon.errors import EngineError  # noqa: E402
from blender_addon.importer.headless import bundle_to_blend  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="reconstruction bundle folder (with scene.json)")
    parser.add_argument("blend", type=Path, help=".blend file to write")
    parser.add_argument("preview", type=Path, help="PNG picture of the imported scene to render")
    parser.add_argument("--clip", type=Path, default=None, help="the footage, shown as the camera's background")
    args = parser.parse_args(argv)
    if not (args.bundle / "scene.json").is_file():
        print(f"error: {args.bundle} is not a bundle (no scene.json)\n  fix: pass the folder that "
              "`python -m engine reconstruct/align/demo` wrote", file=sys.stderr)
        return 2
    try:
        bundle_to_blend(args.bundle, args.blend, args.preview, args.clip)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.blend} and {args.preview}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
