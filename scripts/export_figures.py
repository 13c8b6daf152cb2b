"""Draw the export figures of the README into docs/images/ (or OUT_DIR), from procedural scenes:

    plate_depth.png    depth at the processing size (shown nearest-neighbour, as before) against depth upsampled
                       to the plate (engine/export/upsample.py) and the ground truth, on a crop across an edge
    motion_matte.png   a frame of the moving-objects scene, its motion matte from realistic simulated predictions
                       after alignment (engine/export/mattes.py), and the ground-truth moving pixels

    .venv/bin/python scripts/export_figures.py [OUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `engine`

from engine.alignment.align import align  # noqa: E402
from engine.export.mattes import frame_mattes  # noqa: E402
from engine.export.shot import load_shot  # noqa: E402
from engine.export.upsample import upsample_depth  # noqa: E402
from engine.formats.bundle import write_bundle  # noqa: E402
from engine.synthetic.procedural import make_scene  # noqa: E402
from engine.synthetic.simulate import Corruption, simulate_windows  # noqa: E402


def _panel(image: np.ndarray, label: str, size: tuple[int, int], colour=(255, 255, 255)) -> np.ndarray:
    """image (BGR) scaled nearest-neighbour to size (W, H), labelled in its top-left corner."""
    big = cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)
    cv2.putText(big, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2, cv2.LINE_AA)
    return big


def _save(path: Path, panels: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(panels, axis=1))
    print(f"wrote {path}")


def plate_depth(path: Path, map_size=(120, 200), plate=(240, 400), crop=72, zoom=4) -> None:
    low, high = make_scene("moving_objects", 1, map_size, seed=0), make_scene("moving_objects", 1, plate, seed=0)
    depth = np.where(np.isfinite(low.depth[0]), low.depth[0], 0).astype(np.float32)
    guided, _ = upsample_depth(depth, np.ones_like(depth), high.rgb[0])
    nearest = cv2.resize(depth, plate[::-1], interpolation=cv2.INTER_NEAREST)
    truth = high.depth[0]
    # The crop where the depth jumps most often: an object's silhouette.
    jumps = (np.abs(np.diff(np.log(truth), axis=1)) > 0.2).astype(np.float32)
    density = cv2.boxFilter(jumps, -1, (crop, crop), normalize=False)[crop // 2:-crop // 2, crop // 2:-crop // 2]
    y, x = np.unravel_index(np.argmax(density), density.shape)
    window = (slice(y, y + crop), slice(x, x + crop))
    lo, hi = np.percentile(1 / truth[window], [1, 99])

    def coloured(d):
        inverse = np.clip((1 / np.maximum(d[window], 1e-6) - lo) / (hi - lo), 0, 1)
        return cv2.applyColorMap((255 * inverse).astype(np.uint8), cv2.COLORMAP_VIRIDIS)

    size = (crop * zoom, crop * zoom)
    _save(path, [_panel(cv2.cvtColor(high.rgb[0][window], cv2.COLOR_RGB2BGR), "plate", size),
                 _panel(coloured(nearest), f"processing size {map_size[1]}x{map_size[0]}", size),
                 _panel(coloured(guided), f"plate size {plate[1]}x{plate[0]}, guided", size),
                 _panel(coloured(truth), "ground truth", size)])


def motion_matte(path: Path, size=(120, 200), frames=20, shown=10, zoom=2) -> None:
    gt = make_scene("moving_objects", frames, size, seed=0)
    recon = align(simulate_windows(gt, stride=4, corruption=Corruption.realistic(), seed=0))
    with tempfile.TemporaryDirectory() as tmp:
        moving, _, _ = frame_mattes(load_shot(write_bundle(recon, Path(tmp) / "bundle")))

    def grey(mask):
        return cv2.cvtColor((255 * mask).astype(np.uint8), cv2.COLOR_GRAY2BGR)

    shape, red = (size[1] * zoom, size[0] * zoom), (0, 0, 255)
    _save(path, [_panel(cv2.cvtColor(gt.rgb[shown], cv2.COLOR_RGB2BGR), f"frame {shown}", shape, red),
                 _panel(grey(moving[shown]), "motion matte (export)", shape, red),
                 _panel(grey(gt.dynamic[shown]), "ground truth", shape, red)])


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "docs" / "images"
    plate_depth(out / "plate_depth.png")
    motion_matte(out / "motion_matte.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
