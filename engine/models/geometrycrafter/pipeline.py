"""GeometryCrafter end to end: frames in [0, 1] -> per-frame camera-space point maps and validity,
as the official `GeometryCrafter{Diff,Determ}Pipeline.__call__` computes them (guidance scale 1).

Stages: the MoGe prior at the input size (resized to the processing size when that differs), the
conditioning (CLIP embedding per frame, SVD VAE latents of the frames, point-map VAE latents of the
prior), the windowed denoising (`diff`: Euler sampling; `determ`: one UNet call per window), and the
point-map VAE decoding back at the input size. Everything per frame runs `decode_chunk_size`
frames at a time; only the temporal decoder's result depends on that chunking.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from ...errors import InputError
from . import SIZE_MULTIPLE
from ...sampling.euler import EulerPlan
from .denoise import Conditioning, UNetCallback, added_time_ids, predict_determ, sample_diff
from .image_encoder import CLIPVisionModelWithProjection, encode_video
from .moge import MoGeModel
from .point_map_vae import LOG_DEPTH_MAX, PMapAutoencoderKLTemporalDecoder, decode_point_map, encode_point_map
from .priors import Priors, produce_priors
from .svd_vae import AutoencoderKLTemporalDecoder, encode_vae_video
from .unet import SpatioTemporalUNet
from .windows import WindowPlan

VARIANTS = ("diff", "determ")
# The networks each stage runs, in order: only these need to be on the compute device during the stage.
STAGE_NETWORKS = {"prior": ("moge",), "conditioning": ("image_encoder", "vae", "point_map_vae"),
                  "diffusion": ("unet",), "decoding": ("point_map_vae",)}

# on_stage(stage, networks): called as a stage begins, with the networks it puts on the compute device.
StageHook = Callable[[str, tuple[str, ...]], None]


@dataclass
class GeometryCrafter:
    """The networks of one variant, in eval mode on one device."""

    variant: str                                   # "diff" or "determ"
    unet: SpatioTemporalUNet                       # or its ONNX Runtime graph (onnx_unet.py), called alike
    vae: AutoencoderKLTemporalDecoder
    point_map_vae: PMapAutoencoderKLTemporalDecoder
    image_encoder: CLIPVisionModelWithProjection
    moge: MoGeModel
    scheduler: dict                                # scheduler_config.json kwargs (diff)
    # Where the networks rest between stages (offloading: each stage moves its own networks to the frames'
    # device and back, so the device holds one stage's weights at a time); None: they stay where they are.
    home: torch.device | None = None

    @contextmanager
    def stage(self, name: str, device: torch.device, on_stage: StageHook | None = None) -> Iterator[None]:
        """Run stage `name` (a key of STAGE_NETWORKS) with its networks on `device`."""
        networks = STAGE_NETWORKS[name]
        if on_stage is not None:
            on_stage(name, networks)
        if self.home is None:
            yield
            return
        # An ONNX Runtime graph stays where its session holds it.
        modules = [m for m in (getattr(self, network) for network in networks) if isinstance(m, torch.nn.Module)]
        for module in modules:
            module.to(device)
        try:
            yield
        finally:
            for module in modules:
                module.to(self.home)


@dataclass
class Options:
    """The official call's parameters (`run.py`'s defaults)."""

    height: int | None = None       # processing size; None: the input size
    width: int | None = None
    window_size: int = 110
    overlap: int = 25
    decode_chunk_size: int = 8
    num_inference_steps: int = 5    # diff only
    force_projection: bool = True
    force_fixed_focal: bool = True
    use_extract_interp: bool = False
    seed: int = 42                  # diff only: the noise is torch.randn after manual_seed(seed), on the CPU


@dataclass
class Prediction:
    point_map: torch.Tensor  # [T, H, W, 3] float32, camera space (x right, y down, z forward), relative scale
    valid: torch.Tensor      # [T, H, W] bool


def processing_size(video: torch.Tensor, options: Options) -> tuple[int, int]:
    """(height, width) at which the networks run, checked against the 64-pixel rule."""
    height = options.height or video.shape[-2]
    width = options.width or video.shape[-1]
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise InputError(f"GeometryCrafter processes {height}x{width} frames; both sides must be multiples of "
                         f"{SIZE_MULTIPLE}", f"choose a processing size such as {_round(height)}x{_round(width)}")
    return height, width


def _round(size: int) -> int:
    return max(SIZE_MULTIPLE, round(size / SIZE_MULTIPLE) * SIZE_MULTIPLE)


def resize_priors(priors: Priors, size: tuple[int, int]) -> Priors:
    """The prior at another size, as the official pipelines resize it: bilinear for disparity, the
    ±1 validity (kept as numbers) and x/z, y/z; depth through exp(min(log z, 10)). The intrinsics are
    constant over each frame, so they are unchanged."""
    bilinear = dict(size=size, mode="bilinear", align_corners=False)
    log_z = priors.point_map[:, 2:3].clamp_max(LOG_DEPTH_MAX).exp()
    point_map = torch.cat([F.interpolate(priors.point_map[:, 0:2], **bilinear),
                           F.interpolate(log_z, **bilinear).log()], dim=1)
    return Priors(F.interpolate(priors.disparity[:, None], **bilinear)[:, 0],
                  F.interpolate(priors.valid[:, None], **bilinear)[:, 0], point_map, priors.intrinsics,
                  priors.norm_factor, priors.disparity_range)


@torch.no_grad()
def condition(model: GeometryCrafter, video: torch.Tensor, options: Options,
              on_stage: StageHook | None = None) -> tuple[Conditioning, Priors]:
    """Frames [T, 3, H, W] in [0, 1] -> the UNet's conditioning and the prior it was encoded from
    (both at the processing size). Stages "prior" and "conditioning"."""
    size = processing_size(video, options)
    chunk = options.decode_chunk_size
    video = video.float()
    with model.stage("prior", video.device, on_stage):
        priors = produce_priors(model.moge, video, chunk)
    if size != tuple(video.shape[-2:]):
        priors = resize_priors(priors, size)
        video = F.interpolate(video, size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    with model.stage("conditioning", video.device, on_stage):
        video = video * 2.0 - 1.0
        embeddings = encode_video(model.image_encoder, video, chunk)
        video_latents = encode_vae_video(model.vae, video, chunk)
        prior_latents = encode_point_map(model.point_map_vae, model.vae, priors.disparity, priors.valid,
                                         priors.point_map, priors.intrinsics, chunk)
    return Conditioning(video_latents, prior_latents, embeddings, added_time_ids(video.device)), priors


def initial_noise(plan: WindowPlan, latent_shape: tuple[int, int, int], seed: int,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """[1, window_size, C, h, w] unit noise: what the official `diff` pipeline draws after
    `set_seed(seed)` on the CPU (a GPU draws other numbers)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((1, plan.window_size, *latent_shape), generator=generator).to(device)


@torch.no_grad()
def denoise(model: GeometryCrafter, cond: Conditioning, plan: WindowPlan, options: Options,
            noise: torch.Tensor | None = None, on_unet_call: UNetCallback | None = None) -> torch.Tensor:
    """Conditioning -> unscaled point-map latents [T, 4, h, w]. `noise` (diff only) overrides the
    seeded noise, as the official `latents=` argument does."""
    if model.variant == "diff":
        if noise is None:
            noise = initial_noise(plan, tuple(cond.video_latents.shape[1:]), options.seed, cond.video_latents.device)
        euler = EulerPlan.from_config(model.scheduler, options.num_inference_steps)
        latents = sample_diff(model.unet, cond, plan, euler, noise, on_unet_call)
    else:
        latents = predict_determ(model.unet, cond, plan, on_unet_call)
    return (1.0 / model.vae.scaling_factor) * latents


@torch.no_grad()
def predict(model: GeometryCrafter, video: torch.Tensor, options: Options = Options(),
            noise: torch.Tensor | None = None, on_unet_call: UNetCallback | None = None,
            on_stage: StageHook | None = None) -> Prediction:
    """Frames [T, 3, H, W] float in [0, 1] on the compute device -> point maps and validity at H x W.
    Once conditioned, the frames are dropped: pass them as a temporary to free their memory."""
    if model.variant not in VARIANTS:
        raise InputError(f"unknown GeometryCrafter variant '{model.variant}'", "use diff or determ")
    if video.dim() != 4 or video.shape[1] != 3:
        raise InputError(f"GeometryCrafter takes frames as [T, 3, H, W], got {list(video.shape)}",
                         "pass RGB frames, channels second")
    plan = WindowPlan.make(video.shape[0], options.window_size, options.overlap)
    original = tuple(video.shape[-2:])
    resized = processing_size(video, options) != original
    device = video.device
    cond, _ = condition(model, video, options, on_stage)  # the prior is dropped here
    del video
    with model.stage("diffusion", device, on_stage):
        latents = denoise(model, cond, plan, options, noise, on_unet_call)
    del cond
    with model.stage("decoding", device, on_stage):
        point_map, valid = decode_point_map(model.point_map_vae, latents, options.decode_chunk_size,
                                            options.force_projection, options.force_fixed_focal,
                                            options.use_extract_interp, original if resized else None)
    return Prediction(point_map, valid)
