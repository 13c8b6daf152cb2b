"""Time the OFFICIAL Geo4D code (jzr99/Geo4D) on one window, to compare with `python -m engine.bench model`.

The official full-size model is built from its own `configs/inference_geo4d.yaml` with random weights
and its window inference, `scripts/evaluation/test_geo4d.py::image_guided_synthesis`, runs unchanged
with the demo's sampler settings (`scripts/infer_geo4d.sh`: DDIM 5 steps, eta 0, guidance 1.0,
'uniform_trailing', guidance_rescale 0.7, --perframe_ae, --text_input, the demo prompt, the point-map
VAE) on one random 16-frame window. Timers wrap the official functions from outside; no official code
is edited, and none is in this repository: it is imported only from the checkout given on the
command line.

    python scripts/official_geo4d_bench.py --official /work/official-bench/geo4d \
        --python /work/official-bench/venv/bin/python --size 64 128 --steps 5

prints seconds per window frame by stage (conditioning: text CLIP, image CLIP on the zero frame and
Resampler; encoding: `encode_first_stage`; denoising: `apply_model`, the UNet; decoding: the
point-map VAE's `decode_pm_confhead` and the three `decode_first_stage`), the whole call, and the peak
resident memory of the process, of the build and of the window (the window's is measured by resetting
VmHWM, which also resets the peak that getrusage and `/usr/bin/time -v` report: use the printed one).
`--official-window` of `engine.bench model` takes the four stage figures.

Not timed: the demo's per-window post-processing (masks, `raymap_to_camera_matrix`) is inline code in
`run_inference`, which cannot run without its video reader, checkpoint, CUDA and post-optimisation.

Setting up the official environment (outside this repository; Python 3.11; the fixtures' versions,
/work/shared/fixtures/geo4d/README.md):

    git -C <mirror of jzr99/Geo4D> archive 2e57abc configs lvdm main scripts utils dust3r | tar -x -C geo4d
    python3.11 -m venv venv
    venv/bin/pip install torch==2.13.0              # the CPU build
    venv/bin/pip install --no-deps torchvision==0.28.0
    venv/bin/pip install numpy==1.24.2 kornia==0.9.0 einops==0.8.2 omegaconf==2.4.0 \
        pytorch_lightning==2.6.6 timm==1.0.31 safetensors==0.8.0 ftfy==6.3.1 regex open_clip_torch==2.22.0 tqdm

torchvision 0.28.0 on PyPI is a CUDA build: its `__init__` must skip `_autograd_registrations` and
`_meta_registrations` when the CUDA `_C` cannot load (wrap that import in try/except in the venv).
Environment shims made here, none on the numeric path: import-only stand-ins for the modules the
official files import but this path never calls (decord, ipdb, transformers, cv2, pytorch3d, dust3r's
post-optimisation and evaluation); `DDIMSampler.register_buffer` keeps tensors where they are (the
official one moves them to CUDA); the CLIP wrappers get `version=None` (no pretrained download) and
`device='cpu'`, the UNet `use_checkpoint=False` (as `test_geo4d.py` sets) and `perframe_ae=True`
(the demo's `--perframe_ae`).

Random weights: the official constructors' initialisation, then every parameter drawn again from a
seeded generator (norm weights 1 + 0.1 N, other vectors 0.1 N, matrices N / sqrt(fan_in)), because
the official zero-inits would make the UNet output zero. The work done does not depend on the values.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
import types
from pathlib import Path

CHILD_FLAG = "PARALLAX_OFFICIAL_BENCH_CHILD"
DEMO_PROMPT = "Output a video that assigns each 3D location in the world a consistent color."
STAGES = ("conditioning", "encoding", "denoising", "decoding")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True, type=Path, help="a checkout of jzr99/Geo4D (commit 2e57abc)")
    parser.add_argument("--python", default=None, help="the official venv's python (re-runs this script with it)")
    parser.add_argument("--size", type=int, nargs=2, default=(64, 128), metavar=("H", "W"))
    parser.add_argument("--steps", type=int, default=5, help="DDIM steps (the demo: 5)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fs", type=int, default=24, help="frame-rate conditioning (the demo passes the fps)")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=False,
                        help="run the window once at 1 step before timing")
    return parser.parse_args(argv)


def reexec_with(python: str, argv: list[str]) -> None:
    """Run this script again under the official venv's interpreter (not resolved: a venv's python is
    a link to the base interpreter, and only the link's path selects the venv)."""
    if os.environ.get(CHILD_FLAG) or os.path.abspath(sys.executable) == os.path.abspath(python):
        return
    os.environ[CHILD_FLAG] = "1"
    os.execv(python, [python, os.path.abspath(__file__), *argv])


def stub_module(name: str, attributes: tuple[str, ...] = ()) -> None:
    """An import-only stand-in: its attributes raise if this benchmark ever reaches them."""
    module = types.ModuleType(name)
    module.__path__ = []  # lets "from name.sub import x" find stubbed submodules

    def unavailable(*_args, _name=name, **_kwargs):
        raise RuntimeError(f"{_name} is a stand-in in this benchmark and was reached")

    for attribute in attributes:
        setattr(module, attribute, unavailable)
    sys.modules[name] = module


def install_stubs() -> None:
    for name, attributes in {
        "decord": ("VideoReader", "cpu"),
        "ipdb": ("set_trace",),
        "transformers": ("T5Tokenizer", "T5EncoderModel", "CLIPTokenizer", "CLIPTextModel"),
        "cv2": (),
    }.items():
        if importlib.util.find_spec(name) is None:
            stub_module(name, attributes)
    # Always stubbed: pytorch3d is not installed, and the checkout's dust3r pulls in the
    # post-optimisation's dependencies.
    for name, attributes in {
        "pytorch3d": (), "pytorch3d.renderer": ("PerspectiveCameras", "RayBundle"),
        "pytorch3d.transforms": ("Rotate", "Translate"),
        "dust3r": (), "dust3r.cloud_opt": (), "dust3r.cloud_opt.optimizer_group": ("LightPointCloudGroupOptimizer",),
        "dust3r.utils": (), "dust3r.utils.vo_eval": ("eval_metrics", "plot_trajectory"),
        "dust3r.demo": ("get_3D_model_from_scene",), "dust3r.depth_eval": ("depth_evaluation",),
    }.items():
        stub_module(name, attributes)


def proc_status_gib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024 ** 2
    raise RuntimeError(f"/proc/self/status has no {field}")


def randomize(module, seed: int) -> None:
    import torch

    generator = torch.Generator().manual_seed(seed)
    norms = (torch.nn.GroupNorm, torch.nn.LayerNorm)
    with torch.no_grad():
        for sub in module.modules():
            for name, param in sub.named_parameters(recurse=False):
                if param.dim() == 0:
                    continue  # open_clip's logit_scale
                noise = torch.randn(param.shape, generator=generator)
                if isinstance(sub, norms) and name == "weight":
                    param.copy_(1 + 0.1 * noise)
                elif param.dim() == 1:
                    param.copy_(0.1 * noise)
                else:
                    param.copy_(noise / math.sqrt(param[0].numel()))


class StageTimer:
    """Wraps callables so each call adds its wall time to a stage (calls inside a timed call are not
    wrapped twice: each wrapped function belongs to one stage)."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.calls = dict.fromkeys(STAGES, 0)

    def wrap(self, stage: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start
                self.calls[stage] += 1
        return timed


def build(official: Path, seed: int):
    """The official LatentVisualDiffusion and point-map VAE of configs/inference_geo4d.yaml, random weights."""
    import torch
    from omegaconf import OmegaConf
    from utils.utils import instantiate_from_config

    config = OmegaConf.load(official / "configs" / "inference_geo4d.yaml")
    model_config = config.model
    model_config.params.unet_config.params.use_checkpoint = False
    for key in ("cond_stage_config", "img_cond_stage_config"):
        model_config.params[key].params.version = None
        model_config.params[key].params.device = "cpu"
    torch.manual_seed(seed)
    model = instantiate_from_config(model_config)
    model.perframe_ae = True
    pointmap_vae = instantiate_from_config(config.pointmap_vae_config)
    randomize(model, 1234)
    randomize(pointmap_vae, 5678)
    model.eval().requires_grad_(False)
    pointmap_vae.eval().requires_grad_(False)
    return model, pointmap_vae


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.python:
        reexec_with(args.python, argv)
    official = args.official.resolve()
    if not (official / "scripts" / "evaluation" / "test_geo4d.py").is_file():
        sys.exit(f"{official} is not a Geo4D checkout (no scripts/evaluation/test_geo4d.py)")
    sys.path.insert(0, str(official))
    install_stubs()

    import torch

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    from lvdm.models.samplers.ddim import DDIMSampler

    # The official register_buffer moves every schedule tensor to CUDA; keep them on the CPU.
    DDIMSampler.register_buffer = lambda self, name, value: setattr(self, name, value)
    spec = importlib.util.spec_from_file_location("test_geo4d", official / "scripts" / "evaluation" / "test_geo4d.py")
    test_geo4d = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_geo4d)

    started = time.perf_counter()
    model, pointmap_vae = build(official, args.seed)
    build_s = time.perf_counter() - started
    build_peak = proc_status_gib("VmHWM")
    params = sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in pointmap_vae.parameters())

    height, width = args.size
    frames = 16
    generator = torch.Generator().manual_seed(args.seed)
    video = torch.rand(1, 3, frames, height, width, generator=generator) * 2 - 1
    noise_shape = [1, model.model.diffusion_model.out_channels, frames, height // 8, width // 8]

    def window(steps: int):
        # The demo's call (scripts/infer_geo4d.sh through run_inference), positional as there.
        return test_geo4d.image_guided_synthesis(
            model, [DEMO_PROMPT], video, noise_shape, 1, steps, 0.0, 1.0, None, args.fs, True, False, False, False,
            "uniform_trailing", 0.7, pointmap_vae=pointmap_vae)

    if args.warmup:
        window(1)
    timer = StageTimer()
    model.get_learned_conditioning = timer.wrap("conditioning", model.get_learned_conditioning)
    model.embedder.forward = timer.wrap("conditioning", model.embedder.forward)
    model.image_proj_model.forward = timer.wrap("conditioning", model.image_proj_model.forward)
    model.encode_first_stage = timer.wrap("encoding", model.encode_first_stage)
    model.apply_model = timer.wrap("denoising", model.apply_model)
    model.decode_first_stage = timer.wrap("decoding", model.decode_first_stage)
    test_geo4d.decode_pm_confhead = timer.wrap("decoding", test_geo4d.decode_pm_confhead)

    Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here on: the window's own peak
    start = time.perf_counter()
    out = window(args.steps)
    total_s = time.perf_counter() - start
    window_peak = proc_status_gib("VmHWM")

    per_frame = {stage: timer.seconds[stage] / frames for stage in STAGES}
    print(f"official Geo4D (jzr99/Geo4D at {official}), full size, random weights, {params / 1e9:.3f} B parameters, "
          f"fp32, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"one window: {frames} frames at {height}x{width}, {args.steps} DDIM steps, fs {args.fs}, "
          f"warm-up {'on' if args.warmup else 'off'}; build {build_s:.1f} s")
    print("stage          s/frame  calls")
    for stage in STAGES:
        print(f"{stage:12} {per_frame[stage]:9.4f}  {timer.calls[stage]:5d}")
    print(f"{'total':12} {total_s / frames:9.4f}  (image_guided_synthesis; stages sum "
          f"{sum(per_frame.values()):.4f})")
    # Resetting VmHWM also resets what getrusage (and /usr/bin/time -v) later reports as the peak.
    print(f"peak RSS GiB: process {max(build_peak, window_peak):.2f} (build {build_peak:.2f}, "
          f"window {window_peak:.2f})")
    print(f"output {tuple(out.shape)} finite {bool(torch.isfinite(out).all())}")
    print("--official-window " + ",".join(f"{per_frame[s]:.3f}" for s in STAGES))
    print("json " + json.dumps({"per_frame": per_frame, "total_per_frame": total_s / frames, "build_s": build_s,
                                "build_peak_gib": build_peak, "window_peak_gib": window_peak,
                                "calls": timer.calls, "steps": args.steps, "size": [height, width]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
