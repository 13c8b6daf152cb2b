"""Benchmark: import a bundle of 300 frames x 20,000 points into Blender (camera, points, depth).

    python benchmarks/import_bundle.py

The bundle is made once and cached under .cache/bench-import-bundle/. Prints seconds; the goal is < 2 s.
"""

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the repository's packages

import bpy  # noqa: E402

from blender_addon.importer import import_bundle  # noqa: E402
from tests.synthetic_bundle import write_synthetic_bundle  # noqa: E402

FRAMES, SIZE = 300, (125, 160)  # 125 x 160 = 20,000 points per frame, every pixel valid


def cached_bundle() -> Path:
    path = ROOT / ".cache" / "bench-import-bundle"
    if not (path / "scene.json").is_file():
        started = time.perf_counter()
        write_synthetic_bundle(path, num_frames=FRAMES, size=SIZE, sky=False)
        print(f"made the bundle in {time.perf_counter() - started:.1f} s: {path}")
    return path


def main() -> None:
    path = cached_bundle()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    for label in ("import", "re-import"):
        started, cpu_started = time.perf_counter(), time.process_time()
        collection = import_bundle(bpy.context, path)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        points = len(bpy.data.objects[f"{collection.name} Points"].data.vertices)
        # CPU time too: on a shared machine the wall clock also counts other processes' turns.
        print(f"{label}: {FRAMES} frames, {points:,} points in {seconds:.2f} s wall, {cpu:.2f} s CPU (goal < 2 s)")


if __name__ == "__main__":
    main()
