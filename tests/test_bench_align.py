"""The alignment benchmark's scene sources (engine/bench/align.py)."""

import numpy as np

from engine.bench.align import _scene_sources
from engine.synthetic.procedural import make_scene


def test_the_scene_seed_lays_out_other_procedural_frames():
    # --seed redraws only the simulated predictions' corruptions; the frames, and so the optical flow's errors, stay
    # those of one layout unless --scene-seed changes it.
    (label, names, load), = _scene_sources(["rotation"], rendered=False, scene_seed=3)
    assert label == "procedural" and names == ["rotation"]
    frames = load("rotation", 2, (24, 40)).rgb
    assert np.array_equal(frames, make_scene("rotation", 2, (24, 40), seed=3).rgb)
    assert not np.array_equal(frames, make_scene("rotation", 2, (24, 40), seed=0).rgb)


def test_the_pose_rows_run_on_several_layouts_and_report_each_scenes_worst(capsys):
    from engine.bench.align import COLUMNS, main

    main(["--sections", "poses", "--scenes", "static", "--frames", "12", "--size", "48", "64", "--no-rendered",
          "--pose-window", "8", "2", "--pose-layouts", "2", "--scene-seed", "1"])
    lines = capsys.readouterr().out.splitlines()
    path = COLUMNS.index("ate_percent")
    rows = {layout: float(next(line for line in lines if f"procedural/static L{layout} realistic" in line)
                          .split("realistic")[1].split()[path]) for layout in (1, 2)}
    assert not any("L0 " in line for line in lines)  # layouts start at --scene-seed
    worst = next(line for line in lines if line.strip().startswith("procedural/static ") and "targets" in line)
    assert float(worst.split()[1]) == round(max(rows.values()), 3)
    assert "on every layout" in worst
