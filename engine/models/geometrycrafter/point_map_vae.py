"""GeometryCrafter's point-map VAE (`geometrycrafter/pmap_vae.py`: PMapAutoencoderKLTemporalDecoder)
and the pipeline's `encode_point_map` / `decode_point_map`.

The encoder turns the prior (focal norm, log depth, disparity, validity) into an offset added to
the SVD VAE's latent of the disparity; the temporal decoder has three heads: a focal map, log
depth and a validity logit. Built from the official constructor kwargs; diffusers-style parameter
names, so the hub weights load with strict=True.

Layouts: per-frame `[T, C, H, W]`; latents `[T, 4, H/8, W/8]`; point maps `[T, H, W, 3]` in
camera space (x right, y down, z forward, OpenCV), in the prior's normalised depth unit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..geo4d.vae import Posterior
from .svd_vae import (ENCODER_BLOCK, AutoencoderKLTemporalDecoder, Encoder, TemporalDecoderTrunk, decoder_resnet,
                      time_conv)

LOG_DEPTH_MAX = 10.0  # the official clamp before exp "for numerical stability"


class PMapTemporalDecoder(TemporalDecoderTrunk):
    """The temporal decoder trunk, then per head: GroupNorm, ReLU, 3x3 conv to half width, a
    spatio-temporal resnet, ReLU, 1x1 conv, and a (3, 1, 1) conv along time."""

    def __init__(self, in_channels: int, out_channels: list[int], block_out_channels: list[int], layers_per_block: int):
        super().__init__(in_channels, block_out_channels, layers_per_block)
        width = block_out_channels[0]
        self.out_blocks = nn.ModuleList([
            nn.ModuleList([
                nn.GroupNorm(32, width, eps=1e-6), nn.ReLU(), nn.Conv2d(width, width // 2, 3, padding=1),
                decoder_resnet(width // 2, width // 2), nn.ReLU(), nn.Conv2d(width // 2, out, 1),
            ])
            for out in out_channels
        ])
        self.time_conv_outs = nn.ModuleList([nn.Conv3d(out, out, (3, 1, 1), padding=(1, 0, 0)) for out in out_channels])

    def forward(self, z: torch.Tensor, num_frames: int) -> list[torch.Tensor]:
        features = self.features(z, num_frames)
        heads = []
        for block, conv in zip(self.out_blocks, self.time_conv_outs):
            x = block[2](block[1](block[0](features)))
            x = block[5](block[4](block[3](x, None, num_frames)))
            heads.append(time_conv(conv, x, num_frames))
        return heads


class PMapAutoencoderKLTemporalDecoder(nn.Module):
    """Built from the official kwargs (config.json of the hub's `point_map_vae/`); other entries are
    ignored, as the official constructor's **kwargs does."""

    def __init__(self, in_channels: int = 4, latent_channels: int = 4,
                 enc_down_block_types: list[str] = (ENCODER_BLOCK,) * 4,
                 enc_block_out_channels: list[int] = (128, 256, 512, 512), enc_layers_per_block: int = 2,
                 dec_block_out_channels: list[int] = (128, 256, 512, 512), dec_layers_per_block: int = 2,
                 out_channels: list[int] = (1, 1, 1), mid_block_add_attention: bool = True,
                 offset_scale_factor: float = 0.1, **_ignored):
        super().__init__()
        if list(out_channels) != [1, 1, 1]:
            raise ValueError(f"the point-map VAE decodes three 1-channel heads, got out_channels {list(out_channels)}")
        self.offset_scale_factor = float(offset_scale_factor)
        self.encoder = Encoder(in_channels, latent_channels, list(enc_down_block_types), list(enc_block_out_channels),
                               enc_layers_per_block, double_z=False, mid_block_add_attention=mid_block_add_attention)
        self.decoder = PMapTemporalDecoder(latent_channels, list(out_channels), list(dec_block_out_channels),
                                           dec_layers_per_block)

    @classmethod
    def from_config(cls, config: dict) -> "PMapAutoencoderKLTemporalDecoder":
        """From the official config.json dict (keys starting with '_' are ignored)."""
        return cls(**{k: v for k, v in config.items() if not k.startswith("_")})

    def encode(self, packed: torch.Tensor, svd_moments: torch.Tensor) -> Posterior:
        """packed [N, 4, H, W] (focal norm, log z, disparity, valid ±1) and the SVD VAE's moments of the
        disparity pseudo-image [N, 8, h, w] -> the posterior with mean shifted by offset_scale_factor·encoder."""
        offset = self.encoder(packed) * self.offset_scale_factor
        mean, logvar = torch.chunk(svd_moments.to(offset.dtype), 2, dim=1)
        return Posterior(mean + offset, torch.clamp(logvar, -30.0, 20.0))

    def decode(self, z: torch.Tensor, num_frames: int) -> list[torch.Tensor]:
        """Unscaled latents [(b t), 4, h, w] -> [focal map, log depth, validity logit], each [(b t), 1, 8h, 8w]."""
        return self.decoder(z, num_frames)


@torch.no_grad()
def encode_point_map(point_map_vae: PMapAutoencoderKLTemporalDecoder, vae: AutoencoderKLTemporalDecoder,
                     disparity: torch.Tensor, valid_mask: torch.Tensor, point_map: torch.Tensor,
                     intrinsics: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """The prior (see priors.produce_priors) -> scaled prior latents [T, 4, H/8, W/8].

    disparity [T, H, W] in [-1, 1]; valid_mask [T, H, W] ±1; point_map [T, 3, H, W] (x/z, y/z, log z);
    intrinsics [T, 4] (ncx, ncy, nfx, nfy), constant over each frame. Per frame, so `chunk_size`
    only bounds memory."""
    t, _, h, w = point_map.shape
    focal_norm = torch.linalg.vector_norm(intrinsics[:, 2:4].float(), dim=1)[:, None, None, None].expand(t, 1, h, w)
    vae_dtype = next(vae.parameters()).dtype
    pm_dtype = next(point_map_vae.parameters()).dtype
    latents = []
    for i in range(0, t, chunk_size):
        s = slice(i, i + chunk_size)
        pseudo_image = disparity[s, None].expand(-1, 3, h, w).to(vae_dtype)
        packed = torch.cat([focal_norm[s], point_map[s, 2:3], disparity[s, None], valid_mask[s, None]], dim=1)
        latents.append(point_map_vae.encode(packed.to(pm_dtype), vae.moments(pseudo_image)).mean.float())
    return torch.cat(latents) * vae.scaling_factor


def normalized_meshgrid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """kornia's `create_meshgrid(normalized_coordinates=True)` as [2, H, W]: x = −1 + 2j/(W−1), y = −1 + 2i/(H−1)."""
    xs = (torch.linspace(0, width - 1, width, device=device, dtype=dtype) / (width - 1) - 0.5) * 2
    ys = (torch.linspace(0, height - 1, height, device=device, dtype=dtype) / (height - 1) - 0.5) * 2
    return torch.stack([xs[None, :].expand(height, width), ys[:, None].expand(height, width)])


@torch.no_grad()
def decode_point_map(point_map_vae: PMapAutoencoderKLTemporalDecoder, latents: torch.Tensor, chunk_size: int,
                     force_projection: bool = True, force_fixed_focal: bool = True, use_extract_interp: bool = False,
                     size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Unscaled latents [T, 4, h, w] -> (point map [T, H, W, 3] float32, valid [T, H, W] bool).

    The temporal decoder mixes the frames of each `chunk_size` chunk only, so the chunk size changes
    the result (as in the official pipeline). `size` (H, W) resizes the heads first (the official
    `need_resize`): depth through exp (or nearest-exact with `use_extract_interp`), the rest bilinear.
    force_projection: a pinhole with one focal (force_fixed_focal: one for the whole clip, else per
    frame) averaged over the valid pixels; otherwise the per-pixel focal map is used as is."""
    dtype = next(point_map_vae.parameters()).dtype
    heads = [[], [], []]
    for i in range(0, latents.shape[0], chunk_size):
        chunk = latents[i:i + chunk_size].to(dtype)
        for out, head in zip(heads, point_map_vae.decode(chunk, num_frames=chunk.shape[0])):
            out.append(head.float())
    focal_map, log_depth, valid_logit = (torch.cat(h) for h in heads)

    if size is not None:
        bilinear = dict(size=tuple(size), mode="bilinear", align_corners=False)
        if use_extract_interp:
            log_depth = F.interpolate(log_depth, size=tuple(size), mode="nearest-exact")
            valid_logit = F.interpolate(valid_logit, size=tuple(size), mode="nearest-exact")
        else:
            log_depth = F.interpolate(log_depth.clamp_max(LOG_DEPTH_MAX).exp(), **bilinear).log()
            valid_logit = F.interpolate(valid_logit, **bilinear)
        focal_map = F.interpolate(focal_map, **bilinear)

    t, _, h, w = focal_map.shape
    diagonal = math.sqrt(w ** 2 + h ** 2)
    focal = torch.cat([focal_map * w / diagonal, focal_map * h / diagonal], dim=1)  # [T, 2, H, W]
    valid = valid_logit[:, 0] > 0
    if force_projection:
        weight = valid.float()
        if force_fixed_focal:
            focal = ((focal * weight[:, None]).mean(dim=(0, 2, 3)) / (weight.mean() + 1e-4))[None, :, None, None]
        else:
            focal = ((focal * weight[:, None]).mean(dim=(2, 3))
                     / (weight.mean(dim=(1, 2))[:, None] + 1e-4))[:, :, None, None]
    xy = (focal * normalized_meshgrid(h, w, focal.device, focal.dtype)).expand(t, 2, h, w)
    z = log_depth.clamp_max(LOG_DEPTH_MAX).exp()
    return torch.cat([xy * z, z], dim=1).permute(0, 2, 3, 1), valid
