"""Where the golden fixtures are (Geo4D, GeometryCrafter): $PARALLAX_GEO4D_FIXTURES /
$PARALLAX_GEOMETRYCRAFTER_FIXTURES, else the `shared/` folder next to the checkout (../shared, or
../../shared from a worktree under wt/), else this workplace's /work/shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]


def _candidates(name: str, env: str) -> list[Path]:
    if env in os.environ:
        return [Path(os.environ[env])]
    return [_ROOT / "shared" / "fixtures" / name, _ROOT.parent / "shared" / "fixtures" / name,
            _ROOT.parent.parent / "shared" / "fixtures" / name, Path("/work/shared/fixtures") / name]


_CANDIDATES = _candidates("geo4d", "PARALLAX_GEO4D_FIXTURES")
GEO4D_FIXTURES = next((p for p in _CANDIDATES if (p / "tiny_config.json").is_file()), _CANDIDATES[0])
_GC_CANDIDATES = _candidates("geometrycrafter", "PARALLAX_GEOMETRYCRAFTER_FIXTURES")
GEOMETRYCRAFTER_FIXTURES = next((p for p in _GC_CANDIDATES if (p / "tiny_config.json").is_file()), _GC_CANDIDATES[0])

requires_geo4d_fixtures = pytest.mark.skipif(
    not (GEO4D_FIXTURES / "tiny_config.json").is_file(),
    reason=f"Geo4D golden fixtures not found (looked in {', '.join(map(str, _CANDIDATES))})",
)
requires_geometrycrafter_fixtures = pytest.mark.skipif(
    not (GEOMETRYCRAFTER_FIXTURES / "tiny_config.json").is_file(),
    reason=f"GeometryCrafter golden fixtures not found (looked in {', '.join(map(str, _GC_CANDIDATES))})",
)


def assert_fixture_reproduced(check, config: dict, num_results: int, folder: Path = GEO4D_FIXTURES) -> list:
    """Run the fixture check module `check` (engine.models.<model>.checks.*) on the golden fixtures in
    `folder` and fail unless it gives `num_results` results, all within tolerance (naming those that are not)."""
    results = check.run(folder, config)
    assert len(results) == num_results, [r.name for r in results]
    bad = [(r.name, r.max_error, r.tolerance) for r in results if not r.ok]
    assert not bad, bad
    return results
