"""`python -m engine demo --out DIR`: the weight-free pipeline demo.

Renders a small synthetic scene with known cameras (Blender, in a subprocess), SIMULATES the window
predictions a geometry model would make from its ground truth (this is not the model), aligns them and
writes a bundle plus the rendered frames as a clip, so the rest of the pipeline (import, compositing)
can be tried without the 10 GB of model weights.
"""

import argparse
import json
from pathlib import Path

import cv2

from ..alignment import align
from ..formats.bundle import bundle_files, write_bundle
from ..paths import check_replaceable
from ..synthetic.metrics import evaluate
from ..synthetic.scenes import SCENE_NAMES, load_scene
from ..synthetic.simulate import Corruption, simulate_windows

LABEL = "SIMULATED window predictions made from rendered ground truth (weight-free demo, not the Geo4D model)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder (bundle/, clip.mp4, metrics.json)")
    parser.add_argument("--scene", default="static", choices=SCENE_NAMES)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, nargs=2, default=(160, 256), metavar=("H", "W"))
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)


def write_clip(path: Path, rgb, fps: float) -> None:
    """rgb: uint8[N, H, W, 3] sRGB frames -> an MP4 that Blender's Movie Clip Editor opens."""
    h, w = rgb.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in rgb:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


DEMO_FILES = ("clip.mp4", "metrics.json")


def demo_files(folder: Path) -> set[str] | None:
    """The files an earlier demo wrote into `folder` (its clip, metrics and bundle), or None when the folder
    has no Parallax bundle at `bundle/` (engine.paths.check_replaceable)."""
    bundle = bundle_files(folder / "bundle")
    return None if bundle is None else {*DEMO_FILES, *(f"bundle/{name}" for name in bundle)}


def run(args: argparse.Namespace) -> int:
    # The demo overwrites its clip and metrics in place: only a new, empty or earlier demo folder will do.
    out = check_replaceable(args.out, "Parallax demo folder", demo_files)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[demo] {LABEL}")
    print(f"[demo] rendering scene '{args.scene}' ({args.frames} frames, {args.size[0]}x{args.size[1]})")
    gt = load_scene(args.scene, num_frames=args.frames, size=tuple(args.size))
    clip = out / "clip.mp4"
    write_clip(clip, gt.rgb, gt.fps)
    windows = simulate_windows(gt, stride=args.stride, corruption=Corruption.realistic(), seed=args.seed)
    windows.source = str(clip)
    recon = align(windows)
    seconds = recon.metadata["alignment"]["seconds"]
    recon.source_clip = str(clip)
    recon.metadata.update({"model": "simulated", "label": LABEL, "scene": args.scene})
    write_bundle(recon, out / "bundle", windows=windows)
    metrics = evaluate(recon, gt)
    metrics["align_seconds"] = seconds
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(f"[demo] aligned {windows.num_windows} windows in {seconds:.2f} s; "
          + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
    print(f"[demo] wrote {out / 'bundle'} and {clip}")
    return 0
