"""MoGe (microsoft/MoGe dd158c0, `moge/model/moge_model.py`), GeometryCrafter's per-frame prior:
DINOv2 features -> a convolutional head -> an affine-invariant point map and a validity mask, then
`infer`'s camera recovery (focal and z-shift by least squares) and re-projection.

Built from the checkpoint's `model_config`; parameter names are MoGe's, so `model.pt['model']`
loads with strict=True (read it with torch.load(weights_only=True): tensors and plain data only).
Images are `[B, 3, H, W]` in [0, 1]; point maps `[B, H, W, 3]` camera space (OpenCV axes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ModelError
from .dinov2 import ENTRY_POINTS, PATCH, DinoVisionTransformer, ViTSize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESOLUTION_LEVEL = 9  # GeometryCrafter's third_party.MoGe.forward_image: the largest working size
SOLVER_SIZE = (64, 64)  # recover_focal_shift's nearest downsampling


def _replicate_conv(cin: int, cout: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, padding=kernel // 2, padding_mode="replicate")


class ResidualConvBlock(nn.Module):
    def __init__(self, channels: int, hidden: int, norm: str):
        super().__init__()
        self.layers = nn.Sequential(
            nn.GroupNorm(1, channels), nn.ReLU(), _replicate_conv(channels, hidden, 3),
            nn.GroupNorm(hidden // 32 if norm == "group_norm" else 1, hidden), nn.ReLU(),
            _replicate_conv(hidden, channels, 3),
        )
        self.skip_connection = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x) + x


def normalized_view_plane_uv(width: int, height: int, aspect_ratio: float, dtype=torch.float32,
                             device=None) -> torch.Tensor:
    """[H, W, 2] view-plane coordinates: pixel centres spanning ±(w/diag, h/diag)·(n−1)/n for an image
    of `aspect_ratio` = W/H (MoGe's `normalized_view_plane_uv`)."""
    span_x = aspect_ratio / (1 + aspect_ratio ** 2) ** 0.5
    span_y = 1 / (1 + aspect_ratio ** 2) ** 0.5
    u = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width, dtype=dtype, device=device)
    v = torch.linspace(-span_y * (height - 1) / height, span_y * (height - 1) / height, height, dtype=dtype,
                       device=device)
    return torch.stack([u[None, :].expand(height, width), v[:, None].expand(height, width)], dim=-1)


def _with_uv(x: torch.Tensor, aspect_ratio: float) -> torch.Tensor:
    uv = normalized_view_plane_uv(x.shape[-1], x.shape[-2], aspect_ratio, x.dtype, x.device)
    return torch.cat([x, uv.permute(2, 0, 1)[None].expand(x.shape[0], -1, -1, -1)], dim=1)


class Head(nn.Module):
    def __init__(self, num_features: int, dim_in: int, dim_out: list[int], dim_proj: int, dim_upsample: list[int],
                 dim_times_res_block_hidden: int, num_res_blocks: int, res_block_norm: str, last_res_blocks: int,
                 last_conv_channels: int, last_conv_size: int):
        super().__init__()
        self.projects = nn.ModuleList([nn.Conv2d(dim_in, dim_proj, 1) for _ in range(num_features)])
        widths = [dim_proj, *dim_upsample]
        self.upsample_blocks = nn.ModuleList([
            nn.Sequential(
                nn.Sequential(nn.ConvTranspose2d(cin + 2, cout, 2, stride=2), _replicate_conv(cout, cout, 3)),
                *(ResidualConvBlock(cout, dim_times_res_block_hidden * cout, res_block_norm)
                  for _ in range(num_res_blocks)),
            )
            for cin, cout in zip(widths[:-1], widths[1:])
        ])
        self.output_block = nn.ModuleList([
            nn.Sequential(
                _replicate_conv(dim_upsample[-1] + 2, last_conv_channels, 3),
                *(ResidualConvBlock(last_conv_channels, dim_times_res_block_hidden * last_conv_channels,
                                    res_block_norm) for _ in range(last_res_blocks)),
                nn.ReLU(),
                _replicate_conv(last_conv_channels, out, last_conv_size),
            )
            for out in dim_out
        ])

    def forward(self, features: list[tuple[torch.Tensor, torch.Tensor]], height: int, width: int) -> list[torch.Tensor]:
        """The backbone's (patch tokens, class token) per layer, for an image of height x width ->
        the raw outputs [B, dim_out[i], height, width]."""
        rows, cols = height // PATCH, width // PATCH
        aspect = width / height
        x = torch.stack([proj(tokens.permute(0, 2, 1).unflatten(2, (rows, cols)).contiguous())
                         for proj, (tokens, _) in zip(self.projects, features)], dim=1).sum(dim=1)
        for block in self.upsample_blocks:
            x = block(_with_uv(x, aspect))
        x = _with_uv(F.interpolate(x, (height, width), mode="bilinear", align_corners=False), aspect)
        return [block(x) for block in self.output_block]


@dataclass
class MoGeOutput:
    """`MoGeModel.infer`'s result (and its intermediate steps, for the fixture checks).

    points [B, H, W, 3], mask [B, H, W] bool, intrinsics [B, 3, 3] (normalised: fx, fy in image
    widths/heights, cx = cy = 0.5) at the input size; focal [B] (relative to half the working
    image's diagonal), shift [B]; the working-size tensors points_raw, mask_raw, depth,
    points_projected; the solver's masked inputs and evaluated shifts per image."""

    points: torch.Tensor
    mask: torch.Tensor
    intrinsics: torch.Tensor
    focal: torch.Tensor
    shift: torch.Tensor
    working_hw: tuple[int, int]
    points_raw: torch.Tensor
    mask_raw: torch.Tensor
    depth: torch.Tensor
    points_projected: torch.Tensor
    solver: list[dict]


class MoGeModel(nn.Module):
    """Built from MoGe's `model_config` (`model.pt['model_config']`). `backbone` gives the DINOv2 sizes
    {embed_dim, depth, num_heads} for an `encoder` name that is not one of the hub entry points."""

    def __init__(self, encoder: str = "dinov2_vitb14", intermediate_layers: int = 4, dim_proj: int = 512,
                 dim_upsample: list[int] = (256, 128, 128), dim_times_res_block_hidden: int = 1,
                 num_res_blocks: int = 1, output_mask: bool = False, split_head: bool = False,
                 remap_output: str | bool = "linear", res_block_norm: str = "group_norm",
                 trained_diagonal_size_range: tuple = (600, 900), trained_area_range: tuple = (250000, 490000),
                 last_res_blocks: int = 0, last_conv_channels: int = 32, last_conv_size: int = 1,
                 backbone: dict | None = None):
        super().__init__()
        if not (output_mask and split_head and remap_output == "exp" and isinstance(intermediate_layers, int)):
            raise ValueError("only MoGe's released v1 layout is supported: output_mask and split_head true, "
                             "remap_output 'exp', intermediate_layers an integer")
        if backbone is not None:
            size = ViTSize(int(backbone["embed_dim"]), int(backbone["depth"]), int(backbone["num_heads"]))
        elif encoder in ENTRY_POINTS:
            size = ENTRY_POINTS[encoder]
        else:
            raise ValueError(f"unknown MoGe encoder {encoder!r}: give its sizes as backbone "
                             f"(known: {', '.join(ENTRY_POINTS)})")
        self.intermediate_layers = intermediate_layers
        self.trained_area_range = tuple(trained_area_range)
        self.backbone = DinoVisionTransformer(size)
        self.head = Head(intermediate_layers, size.embed_dim, [3, 1], dim_proj, list(dim_upsample),
                         dim_times_res_block_hidden, num_res_blocks, res_block_norm, last_res_blocks,
                         last_conv_channels, last_conv_size)
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    @classmethod
    def from_config(cls, config: dict) -> "MoGeModel":
        return cls(**config)

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) at which the network runs: the input scaled to the largest trained area."""
        min_area, max_area = self.trained_area_range
        area = min_area + (max_area - min_area) * (RESOLUTION_LEVEL / 9)
        if area == height * width:
            return height, width
        scale = (area / (height * width)) ** 0.5
        return int(height * scale), int(width * scale)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image [B, 3, h, w] in [0, 1] at the working size -> raw points [B, h, w, 3] (xy·exp(z), exp(z))
        and the raw mask [B, h, w] (valid where > 0.5)."""
        height, width = image.shape[-2:]
        image = (image - self.image_mean) / self.image_std
        image_14 = F.interpolate(image, (height // PATCH * PATCH, width // PATCH * PATCH), mode="bilinear",
                                 align_corners=False, antialias=True)
        features = self.backbone.intermediate_layers(image_14, self.intermediate_layers)
        points, mask = self.head(features, height, width)
        points = points.permute(0, 2, 3, 1)
        xy, z = points.split([2, 1], dim=-1)
        z = torch.exp(z)
        return torch.cat([xy * z, z], dim=-1), mask[:, 0]

    @torch.no_grad()
    def infer(self, image: torch.Tensor) -> MoGeOutput:
        """MoGe's `infer(resolution_level=9, apply_mask=False, force_projection=True)` as GeometryCrafter
        calls it. image [B, 3, H, W] in [0, 1]."""
        height, width = image.shape[-2:]
        eh, ew = self.working_size(height, width)
        resized = (eh, ew) != (height, width)
        work = F.interpolate(image, (eh, ew), mode="bicubic", align_corners=False, antialias=True) if resized else image
        points_raw, mask_raw = self.forward(work)
        focal, shift, solver = recover_focal_shift(points_raw, mask_raw > 0.5)
        aspect = width / height
        fx = focal / 2 * (1 + aspect ** 2) ** 0.5 / aspect
        fy = focal / 2 * (1 + aspect ** 2) ** 0.5
        zeros, ones, half = torch.zeros_like(fx), torch.ones_like(fx), torch.full_like(fx, 0.5)
        intrinsics = torch.stack([fx, zeros, half, zeros, fy, half, zeros, zeros, ones], dim=-1).unflatten(-1, (3, 3))
        depth = points_raw[..., 2] + shift[:, None, None]
        projected = unproject(depth, intrinsics)
        points, mask = projected, mask_raw
        if resized:
            bilinear = dict(size=(height, width), mode="bilinear", align_corners=False)
            points = F.interpolate(projected.permute(0, 3, 1, 2), **bilinear).permute(0, 2, 3, 1)
            mask = F.interpolate(mask_raw[:, None], **bilinear)[:, 0]
        return MoGeOutput(points, mask > 0.5, intrinsics, focal, shift, (eh, ew), points_raw, mask_raw, depth,
                          projected, solver)


def moge_from_checkpoint(checkpoint: dict, name: str = "model.pt") -> MoGeModel:
    """MoGe from the content of its `model.pt` as `torch.load(path, weights_only=True)` returns it
    ({'model_config': kwargs, 'model': state dict}), loaded strictly, in eval mode, float32."""
    fix = "download Ruicheng/moge-vitl's model.pt again (python -m engine download geometrycrafter)"
    if not isinstance(checkpoint, dict) or not {"model_config", "model"} <= checkpoint.keys():
        raise ModelError(f"{name} is not a MoGe checkpoint (no 'model_config' and 'model' entries)", fix)
    try:
        model = MoGeModel(**checkpoint["model_config"])
        model.load_state_dict(checkpoint["model"], strict=True)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{name} does not match MoGe's architecture ({str(exc).splitlines()[0]})", fix) from exc
    return model.float().eval().requires_grad_(False)


def unproject(depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """depth [B, h, w] and normalised intrinsics [B, 3, 3] -> camera points [B, h, w, 3] at the pixel
    centres u = (j + 0.5)/w, v = (i + 0.5)/h (utils3d's image_uv + unproject_cv)."""
    _, h, w = depth.shape
    u = torch.linspace(0.5 / w, (w - 0.5) / w, w, dtype=depth.dtype, device=depth.device)
    v = torch.linspace(0.5 / h, (h - 0.5) / h, h, dtype=depth.dtype, device=depth.device)
    uv1 = torch.stack([u[None, :].expand(h, w), v[:, None].expand(h, w), torch.ones(h, w, dtype=depth.dtype,
                                                                                    device=depth.device)], dim=-1)
    rays = uv1 @ torch.inverse(intrinsics).transpose(-2, -1)[:, None]  # [B, h, w, 3]
    return rays * depth[..., None]


def _focal_shift_residuals(uv: np.ndarray, xy: np.ndarray, z: np.ndarray, shift: np.ndarray,
                           evaluated: list[float]) -> np.ndarray:
    """|f·xy/(z+s) − uv| with the best f for this s (closed form), in float64 like the official."""
    evaluated.append(float(shift[0]))
    xy_proj = xy / (z + shift)[:, None]
    f = (xy_proj * uv).sum() / np.square(xy_proj).sum()
    return (f * xy_proj - uv).ravel()


def solve_focal_shift(uv: np.ndarray, points: np.ndarray) -> tuple[np.float32, np.float32, list[float], float]:
    """MoGe's `solve_optimal_focal_shift`: uv [N, 2], points [N, 3] float32 -> (shift float32, focal
    float32 recomputed at that shift, every shift the solver evaluated, the float64 solution).
    scipy's MINPACK Levenberg-Marquardt from 0 with ftol 1e-3, as the official."""
    from scipy.optimize import least_squares

    xy, z = points[:, :2], points[:, 2]
    evaluated: list[float] = []
    solution = least_squares(partial(_focal_shift_residuals, uv, xy, z, evaluated=evaluated), x0=0, ftol=1e-3,
                             method="lm")
    raw = float(solution.x[0])
    shift = solution.x.squeeze().astype(np.float32)
    xy_proj = xy / (z + shift)[:, None]
    focal = (xy_proj * uv).sum() / np.square(xy_proj).sum()
    return shift, focal, evaluated, raw


def recover_focal_shift(points: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """points [B, h, w, 3] and mask [B, h, w] bool -> focal [B] (relative to half the diagonal),
    shift [B], and per image the solver's inputs (`uv_lr`, `points_lr`), evaluated shifts and raw
    float64 solution. Solved on a 64x64 nearest downsampling of the masked pixels, on the host.

    On the meta device (the memory benchmark runs the pipeline there) focal and shift are zeros: the
    solve's device memory is the 64x64 copies, which are not worth counting."""
    b, h, w, _ = points.shape
    if points.is_meta:
        return points.new_zeros(b), points.new_zeros(b), []
    uv = normalized_view_plane_uv(w, h, w / h, points.dtype, points.device)
    points_lr = F.interpolate(points.permute(0, 3, 1, 2), SOLVER_SIZE, mode="nearest").permute(0, 2, 3, 1).cpu().numpy()
    uv_lr = F.interpolate(uv.permute(2, 0, 1)[None], SOLVER_SIZE, mode="nearest")[0].permute(1, 2, 0).cpu().numpy()
    mask_lr = (F.interpolate(mask.float()[:, None], SOLVER_SIZE, mode="nearest")[:, 0] > 0).cpu().numpy()
    focals, shifts, traces = [], [], []
    for i in range(b):
        uv_i, points_i = uv_lr[mask_lr[i]], points_lr[i][mask_lr[i]]
        shift, focal, evaluated, raw = solve_focal_shift(uv_i, points_i)
        focals.append(float(focal))
        shifts.append(float(shift))
        traces.append({"uv_lr": uv_i, "points_lr": points_i, "evaluated": evaluated, "shift_raw": raw})
    as_tensor = partial(torch.tensor, dtype=points.dtype, device=points.device)
    return as_tensor(focals), as_tensor(shifts), traces
