"""One Geo4D window end to end against the official run (fixture e): frames -> context and VAE
condition -> 5 DDIM steps through our UNet -> decoding -> the demo's post-processing and cameras."""

from tests.needs import torch_or_skip

torch_or_skip()

from engine.models.geo4d.checks import e2e_window  # noqa: E402
from tests.fixture_paths import assert_fixture_reproduced, requires_geo4d_fixtures  # noqa: E402


@requires_geo4d_fixtures
def test_fixture_e_reproduced(tiny_config):
    names = [r.name for r in assert_fixture_reproduced(e2e_window, tiny_config, 35)]
    assert "e2e.samples" in names and "e2e.post.traj_c2w" in names
