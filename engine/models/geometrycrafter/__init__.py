"""GeometryCrafter (TencentARC, CVPR 2025): per-frame camera-space point maps from a video, with a
point-map VAE over Stable Video Diffusion and a MoGe prior. Re-implemented from the official code
(TencentARC/GeometryCrafter eb8112b, diffusers 0.31 classes) for inference; official state-dict
key names, so the released weights load with strict=True."""
