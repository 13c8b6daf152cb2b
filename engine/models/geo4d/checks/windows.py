"""windows.json: our sliding windows against the official slice lists, each distinct window once
(the official code appends the last window even when it is already in the list)."""

from __future__ import annotations

import json
from pathlib import Path

from ....windows.schedule import window_starts
from . import CheckResult

FIXTURE = "windows.json"
DEVICE = None  # integer lists, no tensors


def run(folder: Path, config: dict, device: str = "cpu") -> list[CheckResult]:
    results = []
    for case in json.loads((Path(folder) / FIXTURE).read_text())["cases"]:
        official = []
        for start, stop in case["windows"]:
            if [start, stop] not in official:
                official.append([start, stop])
        length = official[0][1] - official[0][0]
        ours = [[int(s), int(s) + length] for s in window_starts(case["T"], case["stride"], length)]
        differing = sum(a != b for a, b in zip(ours, official)) + abs(len(ours) - len(official))
        results.append(CheckResult(f"windows T={case['T']} stride={case['stride']} ({len(ours)} windows)",
                                   float(differing), 0.0))
    return results
