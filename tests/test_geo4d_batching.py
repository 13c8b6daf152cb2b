"""Window inference is deterministic per window: batching windows together changes nothing."""

import numpy as np

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402

from engine.models.geo4d.model import Geo4D, SamplingOptions  # noqa: E402
from engine.windows.schedule import window_starts  # noqa: E402


def test_results_do_not_depend_on_window_batching(tiny_modules):
    torch.set_num_threads(2)
    geo4d = Geo4D.from_modules(tiny_modules, "cpu")
    frames = np.random.default_rng(3).integers(0, 256, (17, 32, 32, 3), dtype=np.uint8)
    one = geo4d.predict(frames, 24.0, window_starts(len(frames), 4), SamplingOptions(steps=1, window_batch=1))
    two = geo4d.predict(frames, 24.0, window_starts(len(frames), 4), SamplingOptions(steps=1, window_batch=2))
    assert one.window_starts.tolist() == [0, 1]
    for name in ("pointmap", "pointmap_conf", "disparity", "ray_moments"):
        np.testing.assert_allclose(getattr(one, name), getattr(two, name), atol=1e-4, rtol=1e-4, err_msg=name)
    # Directions are unit-normalised decoder outputs; with random weights some decode to length ~0.01,
    # so fp32 rounding of ~1e-6 (a different conv batch) becomes ~1e-4 after normalising. Compare
    # them by angle instead: 1e-3 rad is far below any real disagreement (windows differ by degrees).
    cos = np.sum(one.ray_dirs.astype(np.float64) * two.ray_dirs, axis=-1)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < np.degrees(1e-3)
    # Frames 1-15 are shared by both windows: same latents, but each window has its own noise.
    assert not np.allclose(one.pointmap[0, 1:], one.pointmap[1, :15], atol=1e-3)
