"""Multi-modal window alignment: `align(windows, options, progress) -> Reconstruction`."""

from .align import AlignOptions, align, alignment_notes, down_weighted_note, tripod_note
from .quality import quality_note

__all__ = ["AlignOptions", "align", "alignment_notes", "down_weighted_note", "quality_note", "tripod_note"]
