"""Multi-modal window alignment: `align(windows, options, progress) -> Reconstruction`."""

from .align import AlignOptions, align

__all__ = ["AlignOptions", "align"]
