"""Fixture (e): the CLIP conditioning (`encode_video`): antialiased resize to the CLIP size, CLIP
normalisation and the per-frame image embeddings, on an upsampled and a downsampled frame."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import part
from ..image_encoder import (CLIPVisionModelWithProjection, antialias_blur_params, clip_pixels, encode_video,
                             resize_with_antialiasing)
from . import CheckResult, compare, load_tensors, load_tiny

FIXTURE = "image_encoder.safetensors"
WEIGHTS = "tiny_image_encoder.safetensors"


def load_tiny_image_encoder(folder: Path, config: dict,
                            device: torch.device | str = "cpu") -> CLIPVisionModelWithProjection:
    return load_tiny(CLIPVisionModelWithProjection.from_config(part(config, "image_encoder")), folder, WEIGHTS, device)


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    fx = load_tensors(Path(folder) / FIXTURE, device)
    encoder = load_tiny_image_encoder(folder, config, device)
    size = (encoder.image_size, encoder.image_size)
    results = []
    for case in ("small", "large"):
        video = fx[f"{case}.video"]
        sigmas, kernel = antialias_blur_params(video.shape[-2], video.shape[-1], size)
        results += [
            compare(f"clip.{case}.blur_sigma", torch.tensor(sigmas), fx[f"{case}.blur_sigma_hw"]),
            compare(f"clip.{case}.blur_kernel", torch.tensor(kernel), fx[f"{case}.blur_ksize_hw"], tolerance=0.0),
            compare(f"clip.{case}.resized_01", (resize_with_antialiasing(video, size) + 1) / 2,
                    fx[f"{case}.video_224_01"]),
            compare(f"clip.{case}.image_embeds", encode_video(encoder, video, chunk_size=1),
                    fx[f"{case}.image_embeds"]),
        ]
    results.append(compare("clip.small.pixel_values", clip_pixels(fx["small.video"], encoder.image_size),
                           fx["small.pixel_values"]))
    return results
