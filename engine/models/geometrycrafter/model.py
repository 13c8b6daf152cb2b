"""GeometryCrafter as the pipeline's WindowModel (engine/models/window_model.py): each window of the
pipeline's schedule is one run of the official pipeline on that window's frames (one GeometryCrafter
window, no blending), so a window's point maps share one scale, as the official prior normalises a
clip, and the alignment links windows through the frames they share.

Per window: `pipeline.predict` at the processing size (frames read at that size, so no resizing inside),
`diff` noise seeded from (seed, window start) alone; then the maps are resized to the output size.
The maps are per-frame camera-space point maps (`pointmap_frame` "camera") with the decoded validity as
confidence (0 / 1); GeometryCrafter gives no disparity and no rays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...errors import Cancelled
from ...reporting import Progress
from ...windows.predictions import WindowPredictions, new_maps
from ...windows.resize import resize_frames, resize_window_maps
from ...windows.schedule import window_lengths
from ..window_model import SamplingOptions, SizeRule
from .config import part
from .image_encoder import CLIPVisionModelWithProjection
from . import WINDOW_LENGTH, size_rule
from .model_dir import LAYOUT
from ..model_dir import stored_elements
from .moge import MoGeModel
from .pipeline import STAGE_NETWORKS, GeometryCrafter, Options, predict
from .point_map_vae import PMapAutoencoderKLTemporalDecoder
from .svd_vae import AutoencoderKLTemporalDecoder
from .unet import SpatioTemporalUNet

DECODE_CHUNK = 8             # frames per VAE, CLIP and MoGe call (run.py's decode_chunk_size)
MODALITIES = ("pointmap",)
NOISE_STREAM = 2             # engine.sampling.noise streams: Geo4D uses 0 and 1


def window_seed(seed: int, start: int) -> int:
    """The `diff` noise seed of the window starting at frame `start`: independent of the other windows."""
    return int(np.random.SeedSequence([seed, NOISE_STREAM, start]).generate_state(1, np.uint32)[0]) & 0x7FFF_FFFF


CLASSES = {"unet_diff": SpatioTemporalUNet, "unet_determ": SpatioTemporalUNet, "vae": AutoencoderKLTemporalDecoder,
           "point_map_vae": PMapAutoencoderKLTemporalDecoder, "image_encoder": CLIPVisionModelWithProjection,
           "moge": MoGeModel}


def build_part(config: dict, name: str) -> torch.nn.Module:
    """One network (a key of CLASSES) from {part: official kwargs}, randomly initialised on the default device."""
    return CLASSES[name].from_config(part(config, name))


def build(config: dict, variant: str) -> GeometryCrafter:
    """The networks of `variant` from {part: official kwargs}, randomly initialised (float32)."""
    return GeometryCrafter(variant, *(build_part(config, name) for name in (f"unet_{variant}", "vae", "point_map_vae",
                                                                          "image_encoder", "moge")),
                           part(config, "scheduler"))


def load_geometrycrafter(model_dir: str | Path, device: str, dtype: str, variant: str) -> "GeometryCrafterModel":
    """Verify a converted directory (model_dir.py) and load `variant`'s networks with strict key matching:
    the UNet and CLIP in `dtype`, the SVD VAE in float32 where its config says force_upcast, MoGe and the
    point-map VAE in float32 (as the official run.py)."""
    directory = Path(model_dir).expanduser()
    meta = LAYOUT.verify(directory)
    config = meta["config"]
    with torch.device("meta"):  # no memory until the weights are loaded
        network = build(config, variant)
    kept = part_dtypes(config, variant, dtype)
    parts = {f"unet_{variant}": network.unet, "vae": network.vae, "point_map_vae": network.point_map_vae,
             "image_encoder": network.image_encoder, "moge": network.moge}
    network.home = torch.device("cpu") if offloads(device) else None
    for name, module in parts.items():
        LAYOUT.load_network(module, directory, name)
        module.to(device=network.home or device, dtype=getattr(torch, kept[name])).eval().requires_grad_(False)
    return GeometryCrafterModel(network, config, int(meta.get("window_length", WINDOW_LENGTH)), device)


def offloads(device: str) -> bool:
    """Whether the networks rest in host memory on `device`, each stage moving its own there
    (pipeline.STAGE_NETWORKS): on a GPU, a few GB copied per window against a peak lowered by the weights of
    every other stage."""
    return torch.device(device).type == "cuda"


def part_dtypes(config: dict, variant: str, dtype: str) -> dict[str, str]:
    """The dtype ("float32", "float16", "bfloat16") each network file of `variant` loads in: the UNet and CLIP
    in `dtype`, the SVD VAE in float32 where its config says force_upcast, MoGe and the point-map VAE in
    float32 (as the official run.py)."""
    with torch.device("meta"):  # the VAE's own reading of its config, without memory
        upcast = build_part(config, "vae").force_upcast
    return {f"unet_{variant}": dtype, "vae": "float32" if upcast else dtype, "point_map_vae": "float32",
            "image_encoder": dtype, "moge": "float32"}


def memory_floor(model_dir: Path, size: tuple[int, int], dtype: str, device: str, runtime: str = "torch",
                 variant: str = "diff") -> tuple[int, str]:
    """(bytes, what they hold) during the conditioning stage, for the converted directory's model loaded as
    `load_geometrycrafter` would (dtype "float32", "float16" or "bfloat16"), without loading its weights (their
    tensors' sizes come from the files' headers): the weights on the device then (all of them on the CPU, the
    conditioning networks' where the others are offloaded), the SVD VAE's first full-resolution convolution's
    input and output for one chunk of frames ([chunk, ch, H, W] each, float32 with force_upcast), and one
    window's frames as float32. With `runtime` "onnx" the UNet's graph counts on the device too: ONNX Runtime
    keeps a session's weights where it runs (the CUDA provider's initializers in GPU memory) for as long as the
    model is loaded, through every stage, while the torch UNet it replaces is gone (`load`). A lower bound of
    the peak."""
    h, w = size
    directory = Path(model_dir).expanduser()
    meta = LAYOUT.read(directory)
    config = meta["config"]
    kept = part_dtypes(config, variant, dtype)
    on_device = STAGE_NETWORKS["conditioning"] if offloads(device) else tuple(kept)
    if runtime == "onnx":
        on_device += (f"unet_{variant}",)
    weights = sum(stored_elements(directory / f"{name}.safetensors") * getattr(torch, kept[name]).itemsize
                  for name in kept if name in on_device)
    width = int(part(config, "vae")["block_out_channels"][0])
    layers = 2 * DECODE_CHUNK * width * h * w * getattr(torch, kept["vae"]).itemsize
    frames = int(meta.get("window_length", WINDOW_LENGTH)) * 3 * h * w * 4
    return weights + layers + frames, (f"{weights / 1e9:,.1f} GB of weights, {layers / 1e9:,.1f} GB for the "
                                       f"VAE's full-resolution layers, {frames / 1e9:,.1f} GB for one window's "
                                       "frames")


def window_video(frames: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float32 [T, 3, H, W] in [0, 1] on `device`."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    return video.permute(0, 3, 1, 2).float() / 255.0


class GeometryCrafterModel:
    """The loaded model of one variant: `predict(frames, ...)` gives a clip's window predictions."""

    label = "GeometryCrafter"

    def __init__(self, network: GeometryCrafter, config: dict, window_length: int, device: str | torch.device):
        self.network = network
        self.config = config
        self.window_length = window_length
        self.device = torch.device(device)

    @property
    def size_rule(self) -> SizeRule:
        return size_rule()

    @torch.no_grad()
    def predict(self, frames: np.ndarray, fps: float, starts: np.ndarray, options: SamplingOptions | None = None,
                progress: Progress | None = None, cancelled: Callable[[], bool] | None = None,
                map_size: tuple[int, int] | None = None, spill_dir: Path | None = None) -> WindowPredictions:
        """A clip's window predictions (WindowModel.predict). frames: uint8 [N, H, W, 3], H and W multiples of
        64; options.steps are the `diff` Euler steps (determ: one UNet call); windows run one at a time
        (options.window_batch is not used). Progress stage: "diffusion"."""
        options = options or SamplingOptions()
        progress = progress or (lambda stage, fraction: None)
        cancelled = cancelled or (lambda: False)
        n, h, w, _ = frames.shape
        self.size_rule.check((h, w))
        starts = np.asarray(starts, np.int64)
        lengths = window_lengths(starts, n, self.window_length)
        map_h, map_w = map_size or (h, w)
        out = new_maps(len(starts), self.window_length, (map_h, map_w), spill_dir, MODALITIES)
        progress("diffusion", 0.0)
        for g, (start, t) in enumerate(zip(starts.tolist(), lengths.tolist())):
            if cancelled():
                raise Cancelled()
            call = Options(window_size=t, overlap=0, decode_chunk_size=DECODE_CHUNK,
                           num_inference_steps=options.steps, seed=window_seed(options.seed, start))
            # The frames as a temporary: the pipeline frees them once conditioned.
            prediction = predict(self.network, window_video(frames[start:start + t], self.device), call)
            maps = {"pointmap": prediction.point_map.float().cpu().numpy(),
                    "pointmap_conf": prediction.valid.float().cpu().numpy()}
            for name, value in resize_window_maps(maps, (map_h, map_w)).items():
                out[name][g, :t] = value
            progress("diffusion", (g + 1) / len(starts))
        return WindowPredictions(
            num_frames=n, fps=float(fps), image_size=(map_h, map_w), window_length=self.window_length,
            window_starts=starts, window_lengths=lengths, **out, rgb=resize_frames(frames, (map_h, map_w)),
            pointmap_frame="camera")
