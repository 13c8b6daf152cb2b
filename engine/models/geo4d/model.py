"""Geo4D window inference: a clip's frames -> per-window point maps, rays and disparity.

As the official demo does it (5-step DDIM, uniform-trailing timesteps, eta 0, no guidance,
v-prediction, dynamic rescale, fps conditioning, constant context), but built for speed:
- every frame is encoded once (a VAE posterior sample with per-frame noise from the seed) and its
  latent is reused by every window that contains it;
- windows are denoised in batches, each from its own seeded noise, so results do not depend on
  the batch size;
- decoding runs a few frames at a time, so memory stays bounded for any clip length.

The networks sit behind a backend (`TorchBackend` here; the ONNX Runtime one in onnx_backend.py)
with three calls: encode, denoise and decode. `Geo4D` is the pipeline's WindowModel
(engine/models/window_model.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from ...devices import release_freed
from ...errors import Cancelled
from ...windows.predictions import WindowPredictions, new_maps
from ...windows.resize import resize_frames, resize_window_maps
from ...windows.schedule import WINDOW_LENGTH, window_lengths
from ...reporting import Progress
from ...sampling.ddim import DDIMPlan, ddim_sample
from ...sampling.noise import seeded_randn as _seeded_randn
from ...sampling.schedule import NoiseSchedule
from .attention import TEXT_TOKENS
from .config import model_params, size_multiple, size_rule, unet_params, vae_params
from .device_choices import DeviceChoices, apply_threads, choices_for
from .onednn import use_conv_kernel, use_linear_kernel
from .postprocess import DecodedWindow, decode_window, window_geometry
from .unet import IMAGE_TOKENS_PER_FRAME, ProjectedContext
from .vae import compile_vae, encode_frames
from .weights import Geo4DModules, build_modules, drop_not_run
from .. import window_model
from ..window_model import SizeRule


class Backend(Protocol):
    def encode(self, video: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """video [1, 3, n, H, W] in [-1, 1], noise [n, 4, H/8, W/8] -> latent [1, 4, n, H/8, W/8] float32."""

    def prepare_context(self, context: torch.Tensor, frames: int):
        """The context of the denoise calls on windows of `frames` frames, from the constant tokens
        [1, 77 + 16 frames, C]: made once for all the calls of a clip (the torch backend projects the tokens
        to every cross-attention layer's keys and values)."""

    def denoise(self, x: torch.Tensor, t: torch.Tensor, context, fs: torch.Tensor) -> torch.Tensor:
        """x [B, 20, T, h, w], t [B] int64, context from prepare_context (any B), fs [B] int64
        -> v [B, 16, T, h, w]."""

    def decode(self, latent: torch.Tensor) -> DecodedWindow:
        """One window's latent [1, 16, T, h, w] -> decoded maps at [T, 8h, 8w]."""


class VaeBackend:
    """encode and decode of a backend, through its `vae` and `pointmap_vae` (torch modules, or the
    ONNX Runtime stand-ins that make the same calls) with the given device choices (frames per VAE
    call, memory layout: device_choices.py); subclasses add `denoise`."""

    def __init__(self, vae, pointmap_vae, config: dict, choices: DeviceChoices):
        self.vae = vae
        self.pointmap_vae = pointmap_vae
        self.scale_factor = float(model_params(config)["scale_factor"])
        self.choices = choices

    def encode(self, video: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return encode_frames(self.vae, video, self.scale_factor, self.choices.encode_chunk, noise,
                             self.choices.channels_last)

    def decode(self, latent: torch.Tensor) -> DecodedWindow:
        return decode_window(latent, self.vae, self.pointmap_vae, self.scale_factor, self.choices.decode_chunk,
                             self.choices.channels_last, self.choices.upsample)


class TorchBackend(VaeBackend):
    """The networks in PyTorch, on one device, in one precision (float32, float16 or bfloat16), with
    that device's choices (device_choices.CHOICES) unless others are given."""

    def __init__(self, modules: Geo4DModules, choices: DeviceChoices | None = None):
        device = next(modules.unet.parameters()).device
        choices = choices or choices_for(device)
        apply_threads(choices)
        if choices.compile_vae:
            compile_vae(modules.vae)
            compile_vae(modules.pointmap_vae)
        super().__init__(modules.vae, modules.pointmap_vae, modules.config, choices)
        self.unet = modules.unet
        self.dtype = next(modules.unet.parameters()).dtype
        # The kernels in effect: "onednn" swaps the UNet's layers in place (float32 on the CPU only).
        self.linear_kernel = use_linear_kernel(modules.unet, choices.linear_kernel)
        self.conv_kernel = use_conv_kernel(modules.unet, choices.conv_kernel)
        if "onednn" in (self.linear_kernel, self.conv_kernel):
            release_freed(device)  # the heap pages of the plain weights the packed ones replaced

    @torch.no_grad()
    def prepare_context(self, context: torch.Tensor, frames: int) -> ProjectedContext:
        return self.unet.project_context(context.to(self.dtype), frames)

    @torch.no_grad()
    def denoise(self, x, t, context: ProjectedContext | torch.Tensor, fs):
        """context: prepare_context's, or the tokens [B or 1, 77 + 16T, C] (projected in this call)."""
        if isinstance(context, torch.Tensor):
            context = context.to(self.dtype)
        return self.unet(x.to(self.dtype), t, context, fs).float()


@dataclass
class SamplingOptions(window_model.SamplingOptions):
    """How windows are sampled: the shared settings, plus Geo4D's. Results depend only on `steps`, `seed`
    and `fs`, not on batching."""

    fs: int | None = None     # fps conditioning; None = int(clip fps), as the official demo
    encode_chunk: int = 8     # frames handed to the backend per encode call (progress and cancel steps)


def memory_floor(config: dict, size: tuple[int, int], dtype: str, device: str) -> tuple[int, str]:
    """(bytes, what they hold): a lower bound of the memory a window needs at processing size (H, W) in `dtype`
    ("float32", "float16", "bfloat16") on `device`. The weights the loaded model keeps (every network of `config`
    less the parts inference never runs, weights.NOT_RUN, and the context) in the run precision; the VAE's first
    full-resolution convolution's input and output, [frames, ch, H, W] each in the run precision (one encoder
    call's frames on that device, device_choices.py); one window's frames as uint8 RGB. The UNet's and the VAE's
    other layers come on top: for the official model at 320x512 in float32 the bound is 6.29 GB of weights and
    1.35 GB above them, the predicted peak 3.87 GB above the weights (`python -m engine.bench memory`,
    docs/models.md)."""
    h, w = size
    element = getattr(torch, dtype).itemsize
    with torch.device("meta"):
        networks = [drop_not_run(name, module) for name, module in build_modules(config).items()]
    context = (TEXT_TOKENS + IMAGE_TOKENS_PER_FRAME * WINDOW_LENGTH) * int(unet_params(config)["context_dim"])
    weights = (sum(t.numel() for m in networks for t in (*m.parameters(), *m.buffers())) + context) * element
    chunk = choices_for(device).encode_chunk
    layers = 2 * chunk * int(vae_params(config)["ddconfig"]["ch"]) * h * w * element
    clip = WINDOW_LENGTH * h * w * 3
    return weights + layers + clip, (f"{weights / 1e9:,.1f} GB of weights in {dtype}, {layers / 1e9:,.1f} GB for "
                                     f"the VAE's full-resolution layers, {clip / 1e9:,.1f} GB for one window's frames")


class Geo4D:
    """The assembled model: `predict(frames, ...)` gives the window predictions of a clip (a WindowModel)."""

    label = "Geo4D"
    window_length = WINDOW_LENGTH

    def __init__(self, backend: Backend, config: dict, context: torch.Tensor, device: str | torch.device):
        self.backend = backend
        self.config = config
        self.context = context.float().to(device)  # [1, 77 + 16*16, C]
        self.device = torch.device(device)
        self.schedule = NoiseSchedule.from_model_params(model_params(config))

    @classmethod
    def from_modules(cls, modules: Geo4DModules, device: str | torch.device) -> "Geo4D":
        return cls(TorchBackend(modules), modules.config, modules.context, device)

    @property
    def size_multiple(self) -> int:
        """Frame sides must be multiples of this (config.size_multiple)."""
        return size_multiple(self.config)

    @property
    def size_rule(self) -> SizeRule:
        return size_rule(self.config)

    @torch.no_grad()
    def predict(self, frames: np.ndarray, fps: float, starts: np.ndarray,
                options: window_model.SamplingOptions | None = None, progress: Progress | None = None,
                cancelled: Callable[[], bool] | None = None, map_size: tuple[int, int] | None = None,
                spill_dir: Path | None = None) -> WindowPredictions:
        """A clip's window predictions (each window is resized as it is made, so only the output size is
        ever held for the whole clip).

        Args:
            frames: [N, H, W, 3] with H, W multiples of `size_multiple`: uint8 sRGB, or float32 already in
                the model's [-1, 1].
            fps: the clip's frame rate (the fps conditioning unless options.fs is set).
            starts: int64[G], first frame of each 16-frame window (engine.windows.schedule.window_starts).
            options: SamplingOptions (the shared ones get Geo4D's defaults for fs and encode_chunk).
            progress, cancelled: stages "encoding" and "diffusion"; Cancelled is raised when cancelled().
            map_size: (H', W') of the returned maps (default H x W).
            spill_dir: a folder for nameless temporary files that hold the maps as they are made, so that
                a long clip's maps need not fit in memory (`new_maps`); None keeps them in memory.

        Returns:
            WindowPredictions at map_size: maps in each window's first-camera frame (OpenCV axes), rgb kept
            when the frames are uint8.
        """
        options = options or SamplingOptions()
        if not isinstance(options, SamplingOptions):
            options = SamplingOptions(**asdict(options))
        progress = progress or (lambda stage, fraction: None)
        cancelled = cancelled or (lambda: False)
        n, h, w, _ = frames.shape
        m = self.size_multiple
        if h % m or w % m:
            raise ValueError(f"frames are {h}x{w}; Geo4D needs multiples of {m}")
        starts = np.asarray(starts, np.int64)
        lengths = window_lengths(starts, n)
        fs = int(fps) if options.fs is None else int(options.fs)
        plan = DDIMPlan.make(self.schedule, options.steps)

        latents = self._encode(frames, options, progress, cancelled)  # [1, 4, N, h/8, w/8]
        g_count, length = len(starts), WINDOW_LENGTH
        map_h, map_w = map_size or (h, w)
        out = new_maps(g_count, length, (map_h, map_w), spill_dir)
        progress("diffusion", 0.0)
        # Only a clip shorter than 16 frames has a short window, and then it is the only one.
        t = int(lengths[0])
        # Each frame's cross-attention gets the 77 text tokens and its own 16 image tokens; the context is
        # constant, so the backend prepares it once for every window and step.
        context = self.backend.prepare_context(self.context[:, :TEXT_TOKENS + IMAGE_TOKENS_PER_FRAME * t], t)
        for first in range(0, g_count, options.window_batch):
            if cancelled():
                raise Cancelled()
            batch = range(first, min(first + options.window_batch, g_count))
            cond = torch.cat([latents[:, :, starts[g]:starts[g] + t] for g in batch])
            x_T = torch.cat([self._window_noise(options.seed, int(starts[g]), cond.shape[1:]) for g in batch])
            fs_t = torch.full((len(batch),), fs, dtype=torch.int64, device=self.device)

            def denoise(x, timestep):
                return self.backend.denoise(torch.cat([x, cond], dim=1), timestep, context, fs_t)

            samples = ddim_sample(denoise, x_T.to(self.device), plan)
            for b, g in enumerate(batch):
                geometry = window_geometry(self.backend.decode(samples[b:b + 1]))
                self._store(out, g, t, geometry, (map_h, map_w))
            progress("diffusion", batch.stop / g_count)
        return WindowPredictions(
            num_frames=n, fps=float(fps), image_size=(map_h, map_w), window_length=length,
            window_starts=starts, window_lengths=lengths,
            **out, rgb=resize_frames(frames, (map_h, map_w)) if frames.dtype == np.uint8 else None)

    def _encode(self, frames: np.ndarray, options: SamplingOptions, progress: Progress,
                cancelled: Callable[[], bool]) -> torch.Tensor:
        """Each frame's diffusion latent, once: 0.18215 * (mean + std * noise_f), noise_f seeded per frame."""
        n, h, w, _ = frames.shape
        chunks = []
        progress("encoding", 0.0)
        for i in range(0, n, options.encode_chunk):
            if cancelled():
                raise Cancelled()
            part = frames[i:i + options.encode_chunk]
            video = torch.from_numpy(part).to(self.device).permute(3, 0, 1, 2)[None].float()
            if part.dtype == np.uint8:
                video = video / 127.5 - 1.0
            noise = torch.stack([_seeded_randn((4, h // 8, w // 8), options.seed, 0, i + k)
                                 for k in range(len(part))]).to(self.device)
            chunks.append(self.backend.encode(video, noise))
            progress("encoding", min(1.0, (i + len(part)) / n))
        return torch.cat(chunks, dim=2)

    @staticmethod
    def _window_noise(seed: int, start: int, shape: tuple) -> torch.Tensor:
        """x_T of the window starting at `start`: [1, 16, T, h, w], independent of batching."""
        _, t, lh, lw = shape
        return _seeded_randn((1, 16, t, lh, lw), seed, 1, start)

    @staticmethod
    def _store(out: dict, g: int, t: int, geo, size: tuple[int, int]) -> None:
        dirs = geo.ray_dirs / geo.ray_dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        # Moments are kept as decoded: the official post-optimisation scales the camera centres
        # solved from them by the point map's per-window scale alone (optimizer_group._set_traj),
        # i.e. they are in the denormalised point map's units.
        maps = {"pointmap": geo.pts3d, "pointmap_conf": geo.conf[..., 0], "disparity": geo.inverse_depth[..., 0],
                "ray_dirs": dirs, "ray_moments": geo.ray_moments}
        maps = resize_window_maps({k: v.float().cpu().numpy() for k, v in maps.items()}, size)
        for name, value in maps.items():
            out[name][g, :t] = value
