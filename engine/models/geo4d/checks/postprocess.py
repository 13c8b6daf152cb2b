"""Fixture (f): denormalisation, validity masks, softplus, depth normalisation, and cameras from a
synthetic Plücker ray map of known cameras (against the official solver and the analytic answer).

The training's depth normalisation and the official demo's camera solver live here, not in the
model: the pipeline never runs them (the alignment solves the cameras), the fixtures check them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import postprocess as post
from . import CheckResult, compare, load_tensors

FIXTURE = "postprocess.safetensors"


def normalize_depth(depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """How training mapped a [T, H, W] depth/disparity clip into the VAE's [-1, 1] range (min - 0.01
    and max + 0.01 to -1 and 1), repeated to 3 channels. Returns ([T, H, W, 3], scale, lower)."""
    lower = depth.min() - 0.01
    scale = depth.max() + 0.01 - lower
    normed = (depth - lower) / scale * 2.0 - 1.0
    return normed[..., None].repeat(1, 1, 1, 3), scale, lower


@dataclass
class PluckerCameras:
    """Cameras solved from a window's Plücker ray maps (frame 0's rays are the reference)."""

    R: torch.Tensor        # [T, 3, 3] camera-to-world rotation relative to frame 0 (R_i R_0^T)
    centers: torch.Tensor  # [T, 3] camera centres, the rays' least-squares intersection
    rays: torch.Tensor     # [T, P, 6] the square, resized rays used: unit directions, moments

    @property
    def T(self) -> torch.Tensor:
        """[T, 3] world-to-camera translation in the row-vector convention: -R^T c."""
        return -(self.R.transpose(1, 2) @ self.centers[..., None])[..., 0]

    @property
    def c2w(self) -> torch.Tensor:
        """[T, 4, 4] = [R | centre]."""
        out = torch.eye(4, dtype=self.R.dtype, device=self.R.device).repeat(len(self.R), 1, 1)
        out[:, :3, :3] = self.R
        out[:, :3, 3] = self.centers
        return out


def cameras_from_plucker(ray_dirs: torch.Tensor, ray_moments: torch.Tensor) -> PluckerCameras:
    """ray_dirs, ray_moments [T, H, W, 3] -> cameras, the way Geo4D's demo reads its ray maps:
    centre-crop the longer side to a square, nearest-resize to (min, min), then per frame a
    Procrustes rotation between its unit directions and frame 0's, and the centre as the point
    closest to all rays."""
    dirs, moments = _square(ray_dirs), _square(ray_moments)
    t = dirs.shape[0]
    dirs = dirs.reshape(t, -1, 3)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    moments = moments.reshape(t, -1, 3)
    R = _procrustes(dirs[:1].expand_as(dirs), dirs)
    centers = _closest_point_to_lines(torch.cross(dirs, moments, dim=-1), dirs)
    return PluckerCameras(R=R, centers=centers, rays=torch.cat([dirs, moments], dim=-1))


def _square(x: torch.Tensor) -> torch.Tensor:
    """[T, H, W, C] -> [T, S, S, C], S = min(H, W): centre crop of (long - short) // 2 on each side
    of the long axis, then a nearest resize (absorbs the odd pixel)."""
    _, h, w, _ = x.shape
    s = min(h, w)
    if h > w:
        c = (h - w) // 2
        x = x[:, c:h - c]
    elif w > h:
        c = (w - h) // 2
        x = x[:, :, c:w - c]
    return F.interpolate(x.permute(0, 3, 1, 2), (s, s), mode="nearest").permute(0, 2, 3, 1)


def _procrustes(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """[T, P, 3] each -> R [T, 3, 3] minimising ||target - source @ R||, with det(R) = +1."""
    u, _, vh = torch.linalg.svd(source.transpose(1, 2) @ target)
    sign = torch.sign(torch.linalg.det(u @ vh))
    d = torch.ones_like(u[:, 0])
    d[:, 2] = sign
    return u @ (d[..., None] * vh)


def _closest_point_to_lines(points: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Points on lines and unit directions [T, P, 3] -> [T, 3] minimising the summed squared
    distance to the lines: sum_j (I - d_j d_j^T) c = sum_j (I - d_j d_j^T) p_j."""
    proj = torch.eye(3, dtype=dirs.dtype, device=dirs.device) - dirs[..., :, None] * dirs[..., None, :]
    lhs = proj.sum(dim=1)
    rhs = (proj @ points[..., None]).sum(dim=1)
    return torch.linalg.lstsq(lhs, rhs).solution[..., 0]


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    fx = load_tensors(Path(folder) / FIXTURE, device)
    masks_in = fx["masks.in"]
    normed, scale, lower = normalize_depth(fx["normalize_depth.in"])
    # [1, 3, T, H, W] -> [T, H, W, 3]
    cams = cameras_from_plucker(fx["rays.raymap"][0].permute(1, 2, 3, 0),
                                     fx["rays.crossmap"][0].permute(1, 2, 3, 0))
    return [
        compare("post.denormalize", post.denormalize_pointmap(fx["denorm.in"], 2.0, 2.0),
                fx["denorm.out_alpha2_beta2"]),
        compare("post.sky_mask_eps0.35", post.sky_mask(masks_in, 1.05, 0.35), fx["masks.sky_eps0.35"], 0.0),
        compare("post.sky_mask_eps0.1", post.sky_mask(masks_in, 1.05, 0.1), fx["masks.sky_eps0.1"], 0.0),
        compare("post.far_away_mask", post.far_away_mask(masks_in, 1.99), fx["masks.far_1.99"], 0.0),
        compare("post.softplus", F.softplus(fx["softplus.in"]), fx["softplus.out"]),
        compare("post.normalize_depth", normed, fx["normalize_depth.out"]),
        compare("post.normalize_depth_scale", scale, fx["normalize_depth.s"]),
        compare("post.normalize_depth_lower", lower, fx["normalize_depth.lower_bound"]),
        compare("post.rays_R", cams.R, fx["rays.cam.R"]),
        compare("post.rays_T", cams.T, fx["rays.cam.T"]),
        compare("post.rays_center", cams.centers, fx["rays.cam.center"]),
        compare("post.rays_c2w", cams.c2w, fx["rays.traj_c2w"]),
        compare("post.rays_c2w_analytic", cams.c2w, fx["rays.expected_c2w"]),
    ]
