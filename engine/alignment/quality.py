"""Solve quality: how well the solved cameras explain the window predictions, per frame, in pixels.

For every slot (one frame of one window) the sampled points of that window, placed in the world by the
window's similarity, are projected through the frame's solved camera; the slot's error is the median distance
in pixels between where they land and the pixels they were predicted at. A frame's error is the mean of its
slots' errors weighted by their windows' weights. It grows when the windows disagree about the frame (each
window's points land elsewhere), when the rays and point maps disagree about the camera, and when smoothing
had to pull the camera away from the predictions: what Blender's solve error (reprojection of the tracks)
tells an artist. Frames that stand out from the rest of the shot are flagged; the grade (docs/alignment.md)
follows the mean. Pixels are those of the depth maps (the processing size), as scene.json stores them; what the
artist reads (quality_note, the add-on's panel) is in the plate's (engine.reporting.plate_pixels). Dense model
predictions carry their own per-pixel errors, so these figures run higher than the solve error of a few hundred
hand-picked tracks: the grades are set on simulated predictions of known corruption.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..reporting import FIRST_FRAME, frame_numbers, frame_spans, plate_pixels

# Grades by the mean frame error, in pixels of a 1000-pixel-wide image (so they hold at any processing size):
# the upper bound of each grade, best first. Simulated predictions with the errors of a Geo4D-like model on real
# footage (Corruption.realistic) give about 10; noise-free ones 0; twice the realistic errors about 20.
GRADES = (("excellent", 3.0), ("good", 12.0), ("fair", 25.0), ("poor", np.inf))
# A frame is flagged when its error stands out: above the shot's median by FLAG_SIGMAS robust standard
# deviations (1.4826 MAD), and above the excellent bound (same units as GRADES).
FLAG_SIGMAS = 5.0
REFERENCE_WIDTH = 1000.0


@dataclass
class SolveQuality:
    """frame_error_px: float64[N] per frame, pixels of the depth maps (nan where no point was usable).
    width: the depth maps' width, for converting to another size (px * other_width / width).
    down_weighted_frames: frames seen only by windows the alignment down-weighted (they disagreed).
    flagged_frames: frames whose error stands out from the shot's (FLAG_SIGMAS).
    grade: one of GRADES' names, from the mean error (scaled to REFERENCE_WIDTH)."""

    frame_error_px: np.ndarray
    width: int
    down_weighted_frames: list[int]
    flagged_frames: list[int]
    grade: str

    @property
    def mean_px(self) -> float:
        return float(np.nanmean(self.frame_error_px))

    @property
    def worst_frames(self) -> list[int]:
        """Up to five frames with the largest error, worst first."""
        order = np.argsort(-np.nan_to_num(self.frame_error_px, nan=-1.0))
        return [int(i) for i in order[:5]]

    def to_json(self) -> dict:
        """scene.json metadata.alignment.quality (docs/formats.md)."""
        return {"frame_error_px": [round(float(e), 4) if np.isfinite(e) else None for e in self.frame_error_px],
                "mean_error_px": round(self.mean_px, 4), "width": self.width,
                "worst_frames": self.worst_frames, "down_weighted_frames": self.down_weighted_frames,
                "flagged_frames": self.flagged_frames, "grade": self.grade}



def quality_note(metadata: dict, frames: np.ndarray, plate_width: int | None) -> str:
    """One line for the artist from a bundle's metadata (metadata.alignment.quality): the errors in pixels of the
    plate (`plate_width` wide; None where it is unknown, then in the depth maps' own), as Blender's solve error,
    and the frames of the clip counted from 1, as Blender plays it (`frames`: int[N] the clip frame index of
    each of the bundle's frames)."""
    q = metadata["alignment"]["quality"]
    worst = q["worst_frames"][0]
    if plate_width is None:
        scale, unit = 1.0, f"pixels of the {q['width']} px wide depth maps (the plate's size is unknown)"
    else:
        scale, unit = plate_pixels(1.0, q["width"], plate_width), "plate pixels"
    numbers = frame_numbers(frames)
    text = (f"solve error {scale * q['mean_error_px']:.2f} px average in {unit} ({q['grade']}), worst "
            f"{scale * q['frame_error_px'][worst]:.2f} px at frame {numbers[worst]} of the clip "
            f"(counting from {FIRST_FRAME})")
    if q["flagged_frames"]:
        text += f"; check frames {frame_spans([numbers[i] for i in q['flagged_frames']])} of the clip"
    return text


def grade_of(mean_px: float, width: int) -> str:
    reference = mean_px * REFERENCE_WIDTH / width
    return next(name for name, bound in GRADES if reference <= bound)


def solve_quality(points: np.ndarray, usable: np.ndarray, slot_frame: np.ndarray, slot_weight: np.ndarray,
                  pixels: np.ndarray, camera_to_world: np.ndarray, focal: np.ndarray, width: int,
                  down_weighted: np.ndarray) -> SolveQuality:
    """The per-frame error of a solve.

    points: float64[S, P, 3] each slot's sampled points in the world (the solve's world, that of camera_to_world).
    usable: bool[S, P] the points that count (confident, in front of their camera).
    slot_frame: int[S] each slot's frame; slot_weight: float[S] its window's weight.
    pixels: float64[P, 2] the sampled pixels (x, y) relative to the image centre (the principal point).
    camera_to_world: float64[N, 4, 4]; focal: float64[N] pixels; width: the maps' width in pixels.
    down_weighted: bool[S] slots of down-weighted windows.
    """
    n = len(camera_to_world)
    rot = camera_to_world[slot_frame, :3, :3]
    centre = camera_to_world[slot_frame, :3, 3]
    cam = np.einsum("sji,spj->spi", rot, points - centre[:, None])  # world -> each slot's frame camera
    z = cam[..., 2]
    ok = usable & (z > 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        projected = focal[slot_frame, None, None] * cam[..., :2] / z[..., None]
        distance = np.linalg.norm(projected - pixels[None], axis=2)
    slot_error = np.array([np.median(d[m]) if m.any() else np.nan for d, m in zip(distance, ok)])
    weight = np.where(np.isfinite(slot_error), slot_weight, 0.0)
    total = np.zeros(n)
    wsum = np.zeros(n)
    np.add.at(total, slot_frame, weight * np.nan_to_num(slot_error))
    np.add.at(wsum, slot_frame, weight)
    with np.errstate(invalid="ignore"):
        frame_error = np.where(wsum > 0, total / wsum, np.nan)
    kept = np.zeros(n, bool)
    np.logical_or.at(kept, slot_frame, ~down_weighted)
    finite = frame_error[np.isfinite(frame_error)]
    median = float(np.median(finite)) if len(finite) else 0.0
    spread = 1.4826 * float(np.median(np.abs(finite - median))) if len(finite) else 0.0
    flag = max(median + FLAG_SIGMAS * spread, GRADES[0][1] * width / REFERENCE_WIDTH)
    return SolveQuality(frame_error_px=frame_error, width=int(width),
                        down_weighted_frames=[int(i) for i in np.flatnonzero(~kept)],
                        flagged_frames=[int(i) for i in np.flatnonzero(np.nan_to_num(frame_error) > flag)],
                        grade=grade_of(float(np.nanmean(frame_error)), width))

