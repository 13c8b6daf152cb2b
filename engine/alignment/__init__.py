"""Multi-modal window alignment: `align(windows, options, progress) -> Reconstruction`."""

from .align import AlignOptions, align, down_weighted_note

__all__ = ["AlignOptions", "align", "down_weighted_note"]
