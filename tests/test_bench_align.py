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
