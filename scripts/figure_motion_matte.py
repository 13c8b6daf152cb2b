"""Draw docs/images/motion_matte.png: a frame of the procedural moving-objects scene, the motion matte the export
computes from realistic simulated predictions after alignment, and the ground-truth moving pixels.

    .venv/bin/python scripts/figure_motion_matte.py [OUT.png]
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
from engine.formats.bundle import write_bundle  # noqa: E402
from engine.synthetic.procedural import make_scene  # noqa: E402
from engine.synthetic.simulate import Corruption, simulate_windows  # noqa: E402

SIZE, FRAMES, SHOWN, ZOOM = (120, 200), 20, 10, 2


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "docs" / "images" / "motion_matte.png"
    gt = make_scene("moving_objects", FRAMES, SIZE, seed=0)
    recon = align(simulate_windows(gt, stride=4, corruption=Corruption.realistic(), seed=0))
    with tempfile.TemporaryDirectory() as tmp:
        moving, _, _ = frame_mattes(load_shot(write_bundle(recon, Path(tmp) / "bundle")))

    def panel(image, label):
        big = cv2.resize(image, (SIZE[1] * ZOOM, SIZE[0] * ZOOM), interpolation=cv2.INTER_NEAREST)
        cv2.putText(big, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2, cv2.LINE_AA)
        return big

    grey = lambda mask: cv2.cvtColor((255 * mask).astype(np.uint8), cv2.COLOR_GRAY2BGR)  # noqa: E731
    panels = [panel(cv2.cvtColor(gt.rgb[SHOWN], cv2.COLOR_RGB2BGR), f"frame {SHOWN}"),
              panel(grey(moving[SHOWN]), "motion matte (export)"),
              panel(grey(gt.dynamic[SHOWN]), "ground truth")]
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.concatenate(panels, axis=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
