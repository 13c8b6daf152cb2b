"""What the artist knows about the camera (AlignOptions' focal, sensor and principal point), in the maps' pixels.

A known focal is either held (`fixed`: every frame's focal is it) or a prior (`refine`): in log focal, the
windows' estimate and the known value are averaged with weights 1/sigma^2, the known value's sigma being the
artist's tolerance and the windows' the spread of their per-window estimates (a model's focal bias is one per
window and need not average out over windows, so the spread is not divided by their number), at least
MODEL_FOCAL_SIGMA.

Only the focal and principal point change: each window's cameras still come from its own predictions, whose
geometry follows the model's own focal. Solving the point-map cameras with the known focal instead (a
calibrated fit) made the camera path worse on simulated predictions with the model's focal bias (ATE 0.67 %
against 0.43 % on the static scene, 32 frames at 96x160).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..options import AlignOptions

MODEL_FOCAL_SIGMA = 0.02  # a model's focal is off by ~2 % (simulate.Corruption.realistic) even when windows agree


@dataclass
class KnownCamera:
    """focal: pixels of the maps, or None (solve it); mode: "fixed" or "refine"; tolerance: relative sigma.
    principal: float64[2] (x, y) in pixels of the maps from their top-left corner (the centre by default)."""

    focal: float | None
    mode: str
    tolerance: float
    principal: np.ndarray


def known_camera(opts: AlignOptions, map_size: tuple[int, int], plate_size: tuple[int, int]) -> KnownCamera:
    """The options' known camera in pixels of the (H, W) maps; plate_size (H, W) is the clip's, whose pixels
    --focal-units px and --principal-point count in."""
    (h, w), (ph, pw) = map_size, plate_size
    if opts.focal is not None and opts.focal_mode == "fixed" and opts.per_frame_focal == "on":
        raise InputError("a fixed known focal length and one focal length per frame (zoom) contradict each other",
                         "use --focal-mode refine for a zoom shot, or --per-frame-focal off")
    focal = None
    if opts.focal is not None:
        focal = opts.focal * w / pw if opts.focal_units == "px" else opts.focal / opts.sensor_width * w
    principal = np.array([w / 2.0, h / 2.0])
    if opts.principal_point is not None:
        cx, cy = opts.principal_point
        if not (0 <= cx <= pw and 0 <= cy <= ph):
            raise InputError(f"the principal point ({cx:g}, {cy:g}) lies outside the {pw}x{ph} plate",
                             "pass --principal-point in plate pixels from the top-left corner")
        principal = np.array([cx * w / pw, cy * h / ph])
    return KnownCamera(focal=focal, mode=opts.focal_mode, tolerance=opts.focal_tolerance, principal=principal)


def model_focal_sigma(slot_focal: np.ndarray, slot_window: np.ndarray) -> float:
    """How far the windows' focal may be off (relative, a log sigma): the robust spread of their per-window
    estimates (one per window: its slots' median), at least MODEL_FOCAL_SIGMA.
    slot_focal [S] every slot's focal estimate (pixels); slot_window [S] its window."""
    log_slot = np.log(slot_focal)
    per_window = np.array([np.median(log_slot[slot_window == g]) for g in np.unique(slot_window)])
    spread = 1.4826 * np.median(np.abs(per_window - np.median(per_window)))
    return float(max(spread, MODEL_FOCAL_SIGMA))


def apply_known_focal(frame_focal: np.ndarray, slot_focal: np.ndarray, slot_window: np.ndarray,
                      known: KnownCamera) -> np.ndarray:
    """Each frame's focal [N] (pixels) given what is known: the windows' own (`frame_focal` [N]) when nothing
    is, the known one when fixed, else the two averaged in log by their certainty.
    slot_focal [S], slot_window [S]: every slot's own focal estimate and its window."""
    if known.focal is None:
        return frame_focal
    if known.mode == "fixed":
        return np.full(len(frame_focal), known.focal)
    data_var = model_focal_sigma(slot_focal, slot_window) ** 2
    prior_var = known.tolerance ** 2
    log_f = (np.log(frame_focal) / data_var + np.log(known.focal) / prior_var) / (1 / data_var + 1 / prior_var)
    return np.exp(log_f)
