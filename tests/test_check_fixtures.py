"""`python -m engine check-fixtures`: every fixture of the folder reproduced, misses reported."""

import shutil
import subprocess
import sys

from safetensors.torch import load_file, save_file

from engine.models.geo4d.check_fixtures import run_checks
from tests.fixture_paths import GEO4D_FIXTURES, requires_geo4d_fixtures

pytestmark = requires_geo4d_fixtures


def test_every_fixture_of_the_folder_is_reproduced():
    results = run_checks(GEO4D_FIXTURES)
    misses = [f"{fixture}: {r.name} {r.max_error}" for fixture, r in results if not r.ok]
    assert not misses
    fixtures = {p.name for p in GEO4D_FIXTURES.iterdir()
                if p.suffix in (".safetensors", ".json") and not p.name.startswith("tiny_")}
    assert fixtures <= {fixture for fixture, _ in results}
    assert any("keys covered: 2554/2554" in r.name for _, r in results)


def _cli(folder, *args):
    return subprocess.run([sys.executable, "-m", "engine", "check-fixtures", str(folder), *args],
                          capture_output=True, text=True)


def test_a_wrong_or_missing_fixture_is_a_miss(tmp_path):
    folder = tmp_path / "fixtures"
    shutil.copytree(GEO4D_FIXTURES, folder)
    data = load_file(folder / "postprocess.safetensors")
    data["softplus.out"] = data["softplus.out"] + 1e-3  # beyond the 1e-4 tolerance
    save_file(data, folder / "postprocess.safetensors")
    result = _cli(folder, "--only", "postprocess")
    assert result.returncode == 1
    miss = [line for line in result.stdout.splitlines() if line.startswith("MISS")]
    assert len(miss) == 1 and "post.softplus" in miss[0] and "max error 0.001" in miss[0]

    (folder / "resampler.safetensors").unlink()
    result = _cli(folder, "--only", "resampler")
    assert result.returncode == 1 and "resampler.safetensors is missing" in result.stdout


def test_a_folder_without_fixtures_is_refused(tmp_path):
    result = _cli(tmp_path)
    assert result.returncode == 2 and "tiny_config.json" in result.stderr and "fix:" in result.stderr
