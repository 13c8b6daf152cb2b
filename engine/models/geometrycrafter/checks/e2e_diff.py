"""Fixture (g): the `diff` pipeline end to end on a 10-frame clip (3 windows of 5 with overlap 2,
5 Euler steps): the prior and conditioning from the frames, every UNet call replayed from its
stored input, then the whole pipeline free-running from the frames and the stored noise."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ..config import part
from ..denoise import DETERM_TIMESTEP, added_time_ids
from ..pipeline import GeometryCrafter, Options, Prediction, condition, predict
from ..windows import WindowPlan
from . import CheckResult, compare, load_tensors
from .image_encoder import load_tiny_image_encoder
from .moge_prior import load_tiny_moge
from .point_map_vae import load_tiny_point_map_vae, mask_mismatch
from .unet_forward import load_tiny_unet
from .vae import load_tiny_vae

FIXTURE = "e2e_diff.safetensors"
END_TO_END = 1e-3  # the README's tolerance for free-running sampling and end-to-end outputs

# name(window, step, tensor) -> the fixture key of one stored UNet call's tensor
CallName = Callable[[int, int, str], str]


def load_tiny_model(folder: Path, config: dict, variant: str, device: torch.device | str = "cpu") -> GeometryCrafter:
    """The fixture folder's tiny GeometryCrafter of `variant` ("diff" or "determ")."""
    return GeometryCrafter(variant, load_tiny_unet(folder, config, variant, device),
                           load_tiny_vae(folder, config, device), load_tiny_point_map_vae(folder, config, device),
                           load_tiny_image_encoder(folder, config, device), load_tiny_moge(folder, config, device),
                           part(config, "scheduler"))


def call_options(params: torch.Tensor, **flags) -> Options:
    """The fixture's `call.params` (T, height, width, window, overlap, decode chunk, steps) as Options."""
    _, height, width, window, overlap, chunk, steps = (int(v) for v in params)
    return Options(height=height, width=width, window_size=window, overlap=overlap, decode_chunk_size=chunk,
                   num_inference_steps=steps, **flags)


def conditioning_results(model: GeometryCrafter, fx: dict, options: Options) -> tuple[list[CheckResult], torch.Tensor]:
    """The prior and the conditioning computed from the fixture's frames; also our embeddings."""
    cond, priors = condition(model, fx["video"], options)
    return [
        compare("priors.pred_disparity", priors.disparity, fx["priors.pred_disparity"], END_TO_END),
        compare("priors.pred_valid_mask", priors.valid, fx["priors.pred_valid_mask"], 0.0),
        compare("priors.pred_point_map", priors.point_map, fx["priors.pred_point_map"], END_TO_END),
        compare("priors.pred_intrinsic_map", priors.intrinsics, fx["priors.pred_intrinsic_map_per_frame"], END_TO_END),
        compare("video_embeddings", cond.embeddings, fx["video_embeddings"], END_TO_END),
        compare("video_latents", cond.video_latents, fx["video_latents"], END_TO_END),
        compare("prior_latents", cond.prior_latents, fx["prior_latents"], END_TO_END),
    ], cond.embeddings


def stored_calls(fx: dict) -> list[tuple[int, int]]:
    """(window, step) of every stored UNet call (`unet.w<k>[.s<i>].*`; step 0 without `.s`)."""
    calls = set()
    for key in fx:
        if key.startswith("unet."):
            parts = key.split(".")
            calls.add((int(parts[1][1:]), int(parts[2][1:]) if parts[2].startswith("s") else 0))
    return sorted(calls)


def unet_call_results(model: GeometryCrafter, fx: dict, name: CallName, embeddings: torch.Tensor, plan: WindowPlan,
                      free_calls: dict) -> list[CheckResult]:
    """Each stored UNet call replayed from its stored input with the stored embeddings (1e-4), and
    the free-running pipeline's input to the same call (1e-3). free_calls[(window, step)] = input."""
    ids = added_time_ids(embeddings.device)
    stored = stored_calls(fx)
    results = [CheckResult(f"UNet calls: {len(free_calls)} made for {len(stored)} stored",
                           float(sorted(free_calls) != stored), 0.0)]
    for k, i in stored:
        start, end = plan.spans[k]
        t = fx[name(k, i, "t")][0] if name(k, i, "t") in fx else DETERM_TIMESTEP
        replayed = model.unet(fx[name(k, i, "input")], t, embeddings[None, start:end], ids)
        results.append(compare(f"{name(k, i, 'out')} (replayed)", replayed, fx[name(k, i, "out")]))
        if (k, i) in free_calls:
            results.append(compare(f"{name(k, i, 'input')} (free-running)", free_calls[(k, i)],
                                   fx[name(k, i, "input")], END_TO_END))
    return results


def run_pipeline(model: GeometryCrafter, video: torch.Tensor, options: Options,
                 noise: torch.Tensor | None = None) -> tuple[Prediction, dict]:
    """predict(), recording every UNet input by (window, step)."""
    calls: dict = {}
    prediction = predict(model, video, options, noise, lambda k, i, inp, t, out: calls.__setitem__((k, i), inp))
    return prediction, calls


def output_results(name: str, prediction: Prediction, point_map: torch.Tensor,
                   valid: torch.Tensor) -> list[CheckResult]:
    return [compare(f"{name}.point_map", prediction.point_map, point_map, END_TO_END),
            mask_mismatch(f"{name}.valid_mask", prediction.valid, valid)]


def run(folder: Path, config: dict, device: torch.device | str = "cpu") -> list[CheckResult]:
    fx = load_tensors(Path(folder) / FIXTURE, device)
    model = load_tiny_model(folder, config, "diff", device)
    options = call_options(fx["call.params"])
    results, _ = conditioning_results(model, fx, options)
    plan = WindowPlan.make(fx["video"].shape[0], options.window_size, options.overlap)
    prediction, calls = run_pipeline(model, fx["video"], options, fx["noise"])
    results += unet_call_results(model, fx, lambda k, i, n: f"unet.w{k}.s{i}.{n}", fx["video_embeddings"], plan, calls)
    return results + output_results("out", prediction, fx["out.point_map"], fx["out.valid_mask"])
