"""Benchmarks that print figures: `python -m engine.bench align|model|memory|onnx-unet` (development only)."""
