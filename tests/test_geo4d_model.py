"""The assembled Geo4D window inference against the official end-to-end window fixture (e)."""

import numpy as np

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from engine.models.geo4d import model as model_module  # noqa: E402
from engine.models.geo4d.model import Geo4D, SamplingOptions  # noqa: E402
from engine.windows.schedule import window_starts  # noqa: E402
from tests.fixture_paths import GEO4D_FIXTURES as FIXTURES  # noqa: E402


def test_window_matches_official_end_to_end(tiny_modules, monkeypatch):
    torch.set_num_threads(2)
    e2e = load_file(FIXTURES / "e2e_window.safetensors")

    def fixture_noise(shape, seed, stream, index):
        # stream 0: the VAE posterior noise of frame `index`; stream 1: x_T of the window at `index`.
        return e2e["posterior_noise"][index] if stream == 0 else e2e["x_T"]

    monkeypatch.setattr(model_module, "_seeded_randn", fixture_noise)
    geo4d = Geo4D.from_modules(tiny_modules, "cpu")
    frames = e2e["video"][0].permute(1, 2, 3, 0).numpy()  # [16, 32, 64, 3] in [-1, 1]
    w = geo4d.predict(frames, fps=float(e2e["fs"]), starts=window_starts(len(frames), 4),
                      options=SamplingOptions(encode_chunk=5))

    assert w.window_starts.tolist() == [0] and w.window_lengths.tolist() == [16]
    valid = e2e["post.valid_mask"][..., 0].bool().numpy()
    np.testing.assert_allclose(w.pointmap[0], e2e["post.pts3d"].numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(w.pointmap_conf[0], e2e["post.conf"][..., 0].numpy(), atol=1e-4, rtol=1e-4)
    assert np.array_equal(w.pointmap_conf[0] > 0, valid)
    np.testing.assert_allclose(w.disparity[0], e2e["post.inverse_depthmap"][..., 0].numpy(), atol=1e-4)
    raydir = e2e["post.raydir"].numpy()
    unit = raydir / np.linalg.norm(raydir, axis=-1, keepdims=True)
    np.testing.assert_allclose(w.ray_dirs[0], unit, atol=1e-4)
    np.testing.assert_allclose(w.ray_moments[0], e2e["post.crossmap"].numpy(), atol=1e-4)

