"""Robust statistics shared by the alignment's solvers: medians over valid entries, Cauchy weights."""

from __future__ import annotations

import numpy as np


def median_of_valid(values: np.ndarray, valid: np.ndarray, axis: int = 0) -> np.ndarray:
    """Median along `axis` over the entries where `valid` is True; nan where none is.

    values, valid: the same shape, with at least one entry along `axis`. Returns float, `axis` removed.
    """
    count = valid.sum(axis=axis, keepdims=True)
    ordered = np.sort(np.where(valid, values, np.inf), axis=axis)  # invalid entries sort last
    lo = np.take_along_axis(ordered, np.maximum(count - 1, 0) // 2, axis=axis)
    hi = np.take_along_axis(ordered, count // 2, axis=axis)  # count <= length, so count // 2 < length
    return np.where(count > 0, 0.5 * (lo + hi), np.nan).squeeze(axis)


def cauchy_weights(residual: np.ndarray, floor: float, valid: np.ndarray | None = None) -> np.ndarray:
    """Cauchy weights 1 / (1 + (r / c)^2), c = 2.5 robust standard deviations of the residuals (>= floor).

    residual: [P], one scale for all; or [..., P] with `valid` (the same shape), one scale per row over
    its valid entries.
    """
    if valid is None:
        scale = max(2.5 * 1.4826 * float(np.median(residual)), floor) if len(residual) else floor
    else:
        typical = np.nan_to_num(median_of_valid(residual, valid, axis=-1), nan=0.0)[..., None]
        scale = np.maximum(2.5 * 1.4826 * typical, floor)
    return 1.0 / (1.0 + (residual / scale) ** 2)
