"""Window inference with the ONNX Runtime backend (UNet and VAE parts as ONNX graphs) gives the
torch backend's predictions (tiny converted model, CPU, float32).

Tolerance 1e-3 relative to max(1, |torch|): the UNet's ~5e-6 differences pass through DDIM, the VAE
decoders and the ray-direction normalisation (seen at 6e-5 on ray directions)."""

from __future__ import annotations

import numpy as np

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402

from engine.models.geo4d.model import Geo4D, SamplingOptions  # noqa: E402
from engine.windows.schedule import window_starts  # noqa: E402
from engine.models.geo4d.weights import load_geo4d  # noqa: E402
from engine.models.geo4d.onnx_backend import OnnxBackend, export_graphs  # noqa: E402
from tests.fixture_paths import requires_geo4d_fixtures  # noqa: E402

pytestmark = requires_geo4d_fixtures


def test_onnx_backend_window_predictions_match_torch(tiny_model_dir):
    modules = load_geo4d(tiny_model_dir, "cpu", torch.float32)
    frames = np.random.default_rng(3).integers(0, 256, (8, 32, 64, 3), dtype=np.uint8)
    options = SamplingOptions(steps=1)
    starts = window_starts(len(frames), 4)
    reference = Geo4D.from_modules(modules, "cpu").predict(frames, fps=24.0, starts=starts, options=options)
    model = Geo4D(OnnxBackend(export_graphs(modules), modules.config, "cpu"), modules.config, modules.context, "cpu")
    ours = model.predict(frames, fps=24.0, starts=starts, options=options)
    assert sorted(p.name for p in (tiny_model_dir / "onnx").glob("*.onnx")) == [
        "pointmap-decoder-float32.onnx", "unet-float32.onnx", "vae-decoder-float32.onnx", "vae-encoder-float32.onnx"]
    for name in ("pointmap", "pointmap_conf", "disparity", "ray_dirs", "ray_moments"):
        a, b = getattr(ours, name), getattr(reference, name)
        error = np.abs(a - b) / np.maximum(1.0, np.abs(b))
        assert error.max() < 1e-3, (name, error.max())


def test_onnx_runtime_reads_its_weights_after_the_torch_networks_are_gone(tiny_model_dir, monkeypatch):
    """`reconstruct --runtime onnx` loads the torch weights to export from them, then lets them go before
    ONNX Runtime reads its own copy: one copy of the weights in memory at a time."""
    from engine.models import geo4d
    from engine.models.geo4d import onnx_backend
    from engine.models.geo4d.unet import UNet3D
    from engine.models.geo4d.vae import AutoencoderKL
    from tests.sessions_alive import count_networks_at_sessions

    networks, alive_at_session = count_networks_at_sessions(monkeypatch, onnx_backend.OnnxGraph,
                                                            (UNet3D, AutoencoderKL))
    before = networks()
    model = geo4d.load(tiny_model_dir, "cpu", "float32", "onnx")
    assert alive_at_session == [before] * 4  # UNet, VAE encoder and decoder, point-map decoder
    frames = np.random.default_rng(3).integers(0, 256, (4, 32, 64, 3), dtype=np.uint8)
    assert model.predict(frames, fps=24.0, starts=window_starts(4, 4), options=SamplingOptions(steps=1)).num_frames == 4
