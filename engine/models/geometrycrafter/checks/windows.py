"""windows.json: our window spans, `diff` noise frames and overlap blending against the official
rules, for every listed clip length, window size and overlap. Where the official `diff` pipeline
crashes (overlap 0 with several windows), ours must give `determ`'s plain concatenation."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..windows import WindowPlan, append_window, blend_weights, window_noise
from . import CheckResult

FIXTURE = "windows.json"
DEVICE = "cpu"  # small index and weight tables
WEIGHT_TOLERANCE = 1e-6  # the listed weights are float32 values


def blend_terms(plan: WindowPlan) -> list[dict[tuple[int, int], float]]:
    """For each output frame, {(window, position): weight} of the non-zero terms it is blended from,
    found by blending one-hot windows with `append_window`."""
    terms = [(k, pos) for k, (start, end) in enumerate(plan.spans) for pos in range(end - start)]
    index = {term: i for i, term in enumerate(terms)}
    result = None
    for k, (start, end) in enumerate(plan.spans):
        window = torch.zeros(1, end - start, len(terms), dtype=torch.float64)
        for pos in range(end - start):
            window[0, pos, index[(k, pos)]] = 1.0
        result = append_window(result, window, plan.overlap)
    return [{terms[i]: float(row[i]) for i in torch.nonzero(row).flatten().tolist()} for row in result[0]]


def _mismatches(plan: WindowPlan, listed: dict, frames_listing: list | None, num_output: int, diff: bool) -> int:
    """How many listed facts ours differ from (0 when all agree)."""
    count = int(plan.window_size != listed["window_size"]) + int(plan.overlap != listed["overlap"])
    count += int(plan.stride != listed["stride"])
    spans = [(w["idx_start"], w["idx_end"]) for w in listed["windows"]]
    count += sum(a != b for a, b in zip(plan.spans, spans)) + abs(len(plan.spans) - len(spans))
    if diff:
        frames = torch.arange(plan.window_size)[None]
        for k, window in enumerate(listed["windows"][:len(plan.spans)]):
            count += int(window_noise(frames, plan, k)[0].tolist() != window["noise_frames"])
    if "blend_weights" in listed:
        weights = blend_weights(plan.overlap).tolist()
        count += len(weights) != len(listed["blend_weights"])
        count += sum(abs(a - b) > WEIGHT_TOLERANCE for a, b in zip(weights, listed["blend_weights"]))
    ours = blend_terms(plan)
    count += int(len(ours) != num_output)
    for mine, theirs in zip(ours, frames_listing or []):
        expected = {(t["window"], t["pos"]): t["weight"] for t in theirs if t["weight"] != 0.0}
        count += int(mine.keys() != expected.keys())
        count += sum(abs(mine[key] - expected[key]) > WEIGHT_TOLERANCE for key in mine.keys() & expected.keys())
    return count


def run(folder: Path, config: dict, device: str = "cpu") -> list[CheckResult]:
    results = []
    for case in json.loads((Path(folder) / FIXTURE).read_text())["configs"]:
        plan = WindowPlan.make(case["num_frames"], case["window_size"], case["overlap"])
        label = f"windows T={case['num_frames']} size={case['window_size']} overlap={case['overlap']}"
        for pipeline in ("diff", "determ"):
            listed = case[pipeline]
            crashed = "output_frames" not in listed and "error" in listed
            # Long clips list the weights and frame count only; the crashed case borrows determ's listing.
            source = case["determ"] if crashed else listed
            frames_listing, num_output = source.get("output_frames"), source["num_output_frames"]
            name = f"{label} {pipeline}" + (" (official crashes; ours concatenates)" if crashed else "")
            mismatches = _mismatches(plan, listed, frames_listing, num_output, pipeline == "diff")
            results.append(CheckResult(f"{name} [{len(plan.spans)} windows]", float(mismatches), 0.0))
    return results
