"""One Geo4D window end to end against the official run (fixture e): frames -> context and VAE
condition -> 5 DDIM steps through our UNet -> decoding -> the demo's post-processing and cameras."""

from engine.models.geo4d.checks import e2e_window
from tests.fixture_paths import GEO4D_FIXTURES, assert_within_tolerance, requires_geo4d_fixtures


@requires_geo4d_fixtures
def test_fixture_e_reproduced(tiny_config):
    results = e2e_window.run(GEO4D_FIXTURES, tiny_config)
    names = [r.name for r in results]
    assert len(results) == 35 and "e2e.samples" in names and "e2e.post.traj_c2w" in names
    assert_within_tolerance(results)
