"""Window inference and the reconstruct job (clip -> bundle)."""

from .reconstruct import ReconstructOptions, run_reconstruct

__all__ = ["ReconstructOptions", "run_reconstruct"]
