"""Sliding windows against the official slice lists (windows.json), duplicate last window removed."""

import json

import numpy as np
import pytest

from engine.errors import InputError
from engine.windows.schedule import sliding_starts, window_lengths, window_starts

from tests.fixture_paths import GEO4D_FIXTURES as FIXTURES, requires_geo4d_fixtures


def _official_cases():
    path = FIXTURES / "windows.json"
    return json.loads(path.read_text())["cases"] if path.is_file() else []


@requires_geo4d_fixtures
@pytest.mark.parametrize("case", _official_cases(), ids=lambda c: f"T{c['T']}-s{c['stride']}")
def test_matches_official_windows_without_duplicate(case):
    distinct = []
    for start, stop in case["windows"]:
        if [start, stop] not in distinct:
            distinct.append([start, stop])
    starts = window_starts(case["T"], case["stride"])
    ours = [[int(s), int(s) + 16] for s in starts]
    assert ours == distinct
    assert np.all(window_lengths(starts, case["T"]) == 16)


def test_short_clip_gives_one_short_window():
    starts = window_starts(5, 4)
    assert starts.tolist() == [0]
    assert window_lengths(starts, 5).tolist() == [5]


def test_every_frame_covered_and_last_window_ends_on_last_frame():
    for n in range(1, 80):
        for stride in (1, 3, 4, 7, 15):
            starts = window_starts(n, stride)
            lengths = window_lengths(starts, n)
            covered = np.zeros(n, bool)
            for s, l in zip(starts, lengths):
                covered[s:s + l] = True
            assert covered.all()
            assert starts[-1] + lengths[-1] == n
            assert len(set(starts.tolist())) == len(starts)


def test_bad_arguments_are_refused():
    with pytest.raises(InputError, match="stride"):
        window_starts(20, 0)
    with pytest.raises(InputError, match="overlap"):
        window_starts(40, 16)
    with pytest.raises(InputError, match="0 frames"):
        window_starts(0, 4)


def test_sliding_schedule_any_stride():
    """The schedule the simulator also uses: the last window always ends on the last frame, even for
    strides that leave gaps (the model refuses those; simulated predictions may use them)."""
    assert sliding_starts(40, 4).tolist() == [0, 4, 8, 12, 16, 20, 24]
    assert sliding_starts(41, 4).tolist() == [0, 4, 8, 12, 16, 20, 24, 25]
    assert sliding_starts(10, 4).tolist() == [0]
    assert sliding_starts(40, 16).tolist() == [0, 16, 24]


def test_first_slots_name_the_first_window_covering_each_frame():
    from engine.windows.predictions import WindowPredictions

    starts = np.array([0, 3, 6])
    maps = np.zeros((3, 5, 2, 2, 3), np.float32)
    windows = WindowPredictions(num_frames=10, fps=24.0, image_size=(2, 2), window_length=5, window_starts=starts,
                                window_lengths=window_lengths(starts, 10, 5), pointmap=maps,
                                pointmap_conf=maps[..., 0])
    window, slot = windows.first_slots()
    assert window.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 2, 2]
    assert slot.tolist() == [0, 1, 2, 3, 4, 2, 3, 4, 2, 3]
    assert all(i in windows.frames_of(g) for i, g in enumerate(window))
