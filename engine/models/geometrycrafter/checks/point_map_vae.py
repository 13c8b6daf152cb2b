"""Fixture (c): the point-map VAE's encoder on a prior (encode_point_map) and its temporal decoder
with the point-map post-processing for every flag combination and both resize paths."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import part
from ..point_map_vae import PMapAutoencoderKLTemporalDecoder, decode_point_map, encode_point_map
from . import CheckResult, compare, load_tensors, load_tiny
from .vae import load_tiny_vae

FIXTURE = "point_map_vae.safetensors"
WEIGHTS = "tiny_point_map_vae.safetensors"
# decode_point_map flags of the fixture's variants: (force_projection, force_fixed_focal, use_extract_interp, resized)
VARIANTS = {"TT": (True, True, False, False), "TF": (True, False, False, False), "FF": (False, False, False, False),
            "TT_resize": (True, True, False, True), "FF_resize_extract": (False, False, True, True)}


def load_tiny_point_map_vae(folder: Path, config: dict,
                            device: torch.device | str = "cpu") -> PMapAutoencoderKLTemporalDecoder:
    return load_tiny(PMapAutoencoderKLTemporalDecoder.from_config(part(config, "point_map_vae")), folder, WEIGHTS,
                     device)


def mask_mismatch(name: str, ours: torch.Tensor, expected: torch.Tensor) -> CheckResult:
    """Fraction of mask pixels that differ (tolerance 0.1 %)."""
    if ours.shape != expected.shape:
        return CheckResult(f"{name} (shape {tuple(ours.shape)} != {tuple(expected.shape)})", float("inf"), 1e-3)
    return CheckResult(f"{name} (fraction flipped)", float((ours.bool() != expected.bool()).float().mean()), 1e-3)


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    fx = load_tensors(Path(folder) / FIXTURE, device)
    vae = load_tiny_vae(folder, config, device)
    pm = load_tiny_point_map_vae(folder, config, device)
    chunk = int(fx["dec.chunk_size"][0])
    disparity, valid, point_map = fx["enc.disparity"], fx["enc.valid_mask"], fx["enc.point_map"]
    intrinsics = fx["enc.intrinsic_map_per_frame"]
    t, _, h, w = point_map.shape
    packed = fx["enc.packed_input"]
    focal_norm = torch.linalg.vector_norm(intrinsics[:, 2:4], dim=1)[:, None, None, None].expand(t, 1, h, w)
    ours_packed = torch.cat([focal_norm, point_map[:, 2:3], disparity[:, None], valid[:, None]], dim=1)
    results = [
        compare("pmap.packed_input", ours_packed, packed),
        compare("pmap.svd_moments", vae.moments(disparity[:, None].expand(-1, 3, h, w)), fx["enc.svd_moments"]),
        compare("pmap.encoder_out", pm.encoder(packed), fx["enc.encoder_out"]),
        compare("pmap.posterior_mean", pm.encode(packed, fx["enc.svd_moments"]).mean, fx["enc.posterior_mean"]),
        compare("pmap.encode_point_map", encode_point_map(pm, vae, disparity, valid, point_map, intrinsics, chunk),
                fx["enc.latents"]),
    ]
    latents = fx["dec.latents"]
    heads = [torch.cat(h) for h in zip(*(pm.decode(latents[i:i + chunk], latents[i:i + chunk].shape[0])
                                         for i in range(0, latents.shape[0], chunk)))]
    results += [compare(f"pmap.decode.{name}", head, fx[f"dec.raw_{name}"])
                for name, head in zip(("intrinsic", "logdepth", "valid"), heads)]
    results.append(compare("pmap.decode_one_chunk", pm.decode(latents, latents.shape[0])[0],
                           fx["dec.raw_intrinsic_one_chunk"]))
    resize_hw = tuple(int(v) for v in fx["dec.resize_hw"])
    for name, (projection, fixed, extract, resized) in VARIANTS.items():
        points, mask = decode_point_map(pm, latents, chunk, projection, fixed, extract, resize_hw if resized else None)
        results.append(compare(f"pmap.{name}.point_map", points, fx[f"dec.{name}.point_map"]))
        results.append(mask_mismatch(f"pmap.{name}.valid_mask", mask, fx[f"dec.{name}.valid_mask"]))
    return results
