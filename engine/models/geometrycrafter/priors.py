"""GeometryCrafter's per-frame prior (`produce_priors` in diff_ppl.py / determ_ppl.py): MoGe's point
maps and masks turned into what the point-map VAE encodes.

One normalisation for the whole clip (mean valid depth), disparity scaled by robust clip-wide
bounds to [-1, 1], the point map as (x/z, y/z, log z), and the 'intrinsic map' (ncx, ncy, nfx, nfy)
fitted per frame to x/z, y/z over a normalised pixel grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .moge import MoGeModel
from .point_map_vae import normalized_meshgrid

ROBUST_QUANTILE = 0.99


@dataclass
class Priors:
    """disparity [T, H, W] in [-1, 1] (0 disparity where invalid before scaling); valid [T, H, W]
    float ±1; point_map [T, 3, H, W] (x/z, y/z, log z · valid); intrinsics [T, 4] (ncx, ncy, nfx, nfy),
    constant over each frame; norm_factor the clip's depth unit; disparity_range [2] float64 the
    robust (min, max) of the unscaled disparity."""

    disparity: torch.Tensor
    valid: torch.Tensor
    point_map: torch.Tensor
    intrinsics: torch.Tensor
    norm_factor: torch.Tensor
    disparity_range: torch.Tensor


def robust_min_max(values: torch.Tensor, quantile: float = ROBUST_QUANTILE) -> torch.Tensor:
    """values [T, H, W] -> [2] float64 (smallest per-frame (1−q) quantile, largest per-frame q quantile),
    nearest rank; a tensor on the values' device (no host sync)."""
    lows = torch.stack([torch.quantile(frame, q=1 - quantile, interpolation="nearest") for frame in values])
    highs = torch.stack([torch.quantile(frame, q=quantile, interpolation="nearest") for frame in values])
    return torch.stack([lows.min(), highs.max()]).double()


def intrinsic_map(xy: torch.Tensor) -> torch.Tensor:
    """xy [T, H, W, 2] (x/z, y/z) -> [T, 4] (ncx, ncy, nfx, nfy): nc the mean of xy, nf the mean of
    (xy − nc) / grid over all pixels, grid the normalised pixel grid (H and W even, so never 0)."""
    t, h, w, _ = xy.shape
    if h % 2 or w % 2:
        raise ValueError(f"the prior's intrinsic map needs an even frame size, got {h}x{w}")
    grid = normalized_meshgrid(h, w, xy.device, xy.dtype).permute(1, 2, 0)  # [H, W, 2]
    nc = xy.mean(dim=-2).mean(dim=-2)
    nf = ((xy - nc[:, None, None, :]) / grid).mean(dim=-2).mean(dim=-2)
    return torch.cat([nc, nf], dim=-1)


@torch.no_grad()
def priors_from_points(points: torch.Tensor, mask: torch.Tensor) -> Priors:
    """MoGe points [T, H, W, 3] and masks [T, H, W] bool -> the prior (everything after MoGe in
    `produce_priors`)."""
    valid = mask.bool()
    weight = valid.float()
    norm_factor = ((points[..., 2] * weight).mean() / (weight.mean() + 1e-8)).clip(min=1e-3)
    points = points / norm_factor
    z = points[..., 2]
    disparity = 1.0 / z.clamp_min(1e-3) * valid
    bounds = robust_min_max(disparity)
    low, high = bounds
    # The range in float64, as the official computes it from python floats.
    disparity = ((disparity - low.float()) / (high - low + 1e-4).float()).clamp(0, 1) * 2 - 1
    xy = points[..., :2] / (z[..., None] + 1e-7)
    log_z = torch.log(z + 1e-7) * valid
    point_map = torch.cat([xy, log_z[..., None]], dim=-1).permute(0, 3, 1, 2)
    return Priors(disparity, weight * 2 - 1, point_map, intrinsic_map(xy), norm_factor, bounds)


@torch.no_grad()
def produce_priors(moge: MoGeModel, video: torch.Tensor, chunk_size: int) -> Priors:
    """Frames [T, 3, H, W] in [0, 1] -> the prior, MoGe running `chunk_size` frames at a time
    (per frame, so the chunk size only bounds memory)."""
    dtype = next(moge.parameters()).dtype
    points, masks = [], []
    for i in range(0, video.shape[0], chunk_size):
        out = moge.infer(video[i:i + chunk_size].to(dtype))
        points.append(out.points.float())
        masks.append(out.mask)
    return priors_from_points(torch.cat(points), torch.cat(masks))
