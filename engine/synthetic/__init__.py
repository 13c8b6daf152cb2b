"""Synthetic scenes with ground truth, simulated window predictions and metrics (development only)."""
