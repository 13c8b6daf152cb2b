"""Where the Geo4D golden fixtures are: $PARALLAX_GEO4D_FIXTURES, else the `shared/` folder next to
the checkout (../shared, or ../../shared from a worktree under wt/), else this workplace's /work/shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
_CANDIDATES = [Path(os.environ["PARALLAX_GEO4D_FIXTURES"])] if "PARALLAX_GEO4D_FIXTURES" in os.environ else [
    _ROOT / "shared" / "fixtures" / "geo4d",
    _ROOT.parent / "shared" / "fixtures" / "geo4d",
    _ROOT.parent.parent / "shared" / "fixtures" / "geo4d",
    Path("/work/shared/fixtures/geo4d"),
]
GEO4D_FIXTURES = next((p for p in _CANDIDATES if (p / "tiny_config.json").is_file()), _CANDIDATES[0])

requires_geo4d_fixtures = pytest.mark.skipif(
    not (GEO4D_FIXTURES / "tiny_config.json").is_file(),
    reason=f"Geo4D golden fixtures not found (looked in {', '.join(map(str, _CANDIDATES))})",
)


def assert_fixture_reproduced(check, config: dict, num_results: int) -> list:
    """Run the fixture check module `check` (engine.models.geo4d.checks.*) on the golden fixtures and
    fail unless it gives `num_results` results, all within tolerance (naming those that are not)."""
    results = check.run(GEO4D_FIXTURES, config)
    assert len(results) == num_results, [r.name for r in results]
    bad = [(r.name, r.max_error, r.tolerance) for r in results if not r.ok]
    assert not bad, bad
    return results
