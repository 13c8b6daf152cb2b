"""Draw docs/images/plate_depth.png: depth at the processing size (shown nearest-neighbour, as before) against
depth upsampled to the plate (engine/export/upsample.py) and the ground truth, on a crop across an object's edge
of a procedural scene rendered at both sizes.

    .venv/bin/python scripts/figure_plate_depth.py [OUT.png]
"""

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `engine`

from engine.export.upsample import upsample_depth  # noqa: E402
from engine.synthetic.procedural import make_scene  # noqa: E402

MAP, PLATE, CROP, ZOOM = (120, 200), (240, 400), 72, 4


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "docs" / "images" / "plate_depth.png"
    low, high = make_scene("moving_objects", 1, MAP, seed=0), make_scene("moving_objects", 1, PLATE, seed=0)
    depth = np.where(np.isfinite(low.depth[0]), low.depth[0], 0).astype(np.float32)
    guided, _ = upsample_depth(depth, np.ones_like(depth), high.rgb[0])
    nearest = cv2.resize(depth, PLATE[::-1], interpolation=cv2.INTER_NEAREST)
    truth = high.depth[0]
    # The crop where the depth jumps most often: an object's silhouette.
    jumps = (np.abs(np.diff(np.log(truth), axis=1)) > 0.2).astype(np.float32)
    density = cv2.boxFilter(jumps, -1, (CROP, CROP), normalize=False)
    y, x = np.unravel_index(np.argmax(density[CROP // 2:-CROP // 2, CROP // 2:-CROP // 2]), density[CROP // 2:-CROP // 2, CROP // 2:-CROP // 2].shape)
    window = (slice(y, y + CROP), slice(x, x + CROP))
    lo, hi = np.percentile(1 / truth[window], [1, 99])

    def panel(image, label):
        big = cv2.resize(image, (CROP * ZOOM, CROP * ZOOM), interpolation=cv2.INTER_NEAREST)
        cv2.putText(big, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
        return big

    def coloured(d):
        inverse = np.clip((1 / np.maximum(d[window], 1e-6) - lo) / (hi - lo), 0, 1)
        return cv2.applyColorMap((255 * inverse).astype(np.uint8), cv2.COLORMAP_VIRIDIS)

    panels = [panel(cv2.cvtColor(high.rgb[0][window], cv2.COLOR_RGB2BGR), "plate"),
              panel(coloured(nearest), f"processing size {MAP[1]}x{MAP[0]}"),
              panel(coloured(guided), f"plate size {PLATE[1]}x{PLATE[0]}, guided"),
              panel(coloured(truth), "ground truth")]
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.concatenate(panels, axis=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
