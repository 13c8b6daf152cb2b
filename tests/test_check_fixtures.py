"""`python -m engine check-fixtures`: every fixture file has a check, misses are reported, exit codes."""

import shutil
import subprocess
import sys

import pytest

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from engine.models.fixtures import check_modules, run_checks  # noqa: E402
from tests.fixture_paths import GEO4D_FIXTURES, requires_geo4d_fixtures  # noqa: E402

pytestmark = requires_geo4d_fixtures


def test_every_fixture_file_has_a_check_module():
    # Each module's reproduction is tested by its owner's test file (test_geo4d_unet, test_sampling, ...);
    # here: nothing in the folder goes unchecked.
    fixtures = {p.name for p in GEO4D_FIXTURES.iterdir()
                if p.suffix in (".safetensors", ".json") and not p.name.startswith("tiny_")}
    assert fixtures <= {module.FIXTURE for module in check_modules()}


def test_official_window_lists_are_reproduced():
    results = run_checks(GEO4D_FIXTURES, only="windows")
    assert len(results) == 18 and all(r.ok for _, r in results)
    assert {fixture for fixture, _ in results} == {"windows.json"}


def _cli(folder, *args):
    return subprocess.run([sys.executable, "-m", "engine", "check-fixtures", str(folder), *args],
                          capture_output=True, text=True)


def test_a_wrong_or_missing_fixture_is_a_miss(tmp_path):
    folder = tmp_path / "fixtures"
    shutil.copytree(GEO4D_FIXTURES, folder)
    data = load_file(folder / "postprocess.safetensors")
    data["softplus.out"] = data["softplus.out"] + 1e-3  # beyond the 1e-4 tolerance
    save_file(data, folder / "postprocess.safetensors")
    result = _cli(folder, "--only", "windows")
    assert result.returncode == 0 and "18/18 checks within tolerance" in result.stdout
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


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_refused():
    result = _cli(GEO4D_FIXTURES, "--device", "cuda", "--only", "windows")
    assert result.returncode == 2 and "no CUDA GPU" in result.stderr and "--device cpu" in result.stderr
