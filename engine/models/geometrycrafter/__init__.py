"""GeometryCrafter (TencentARC, CVPR 2025) re-implemented: networks, priors and pipelines."""
