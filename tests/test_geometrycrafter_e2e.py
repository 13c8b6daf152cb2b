"""GeometryCrafter end to end against the official pipelines (fixture g: diff, determ and their
variants, from the frames to the point maps), the processing-size rule, and check-fixtures on the
GeometryCrafter folder."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402

from engine.models.fixtures import check_modules, model_of  # noqa: E402
from engine.errors import InputError  # noqa: E402
from engine.models.geometrycrafter.checks import e2e_determ, e2e_diff, e2e_variants  # noqa: E402
from engine.models.geometrycrafter.config import load_config  # noqa: E402
from engine.models.geometrycrafter.pipeline import Options, predict  # noqa: E402
from tests.fixture_paths import GEOMETRYCRAFTER_FIXTURES as FOLDER  # noqa: E402
from tests.fixture_paths import assert_fixture_reproduced, requires_geometrycrafter_fixtures  # noqa: E402

pytestmark = requires_geometrycrafter_fixtures


@pytest.fixture(scope="module")
def config() -> dict:
    torch.set_num_threads(2)
    return load_config(FOLDER / "tiny_config.json")


@pytest.mark.parametrize("check, num_results", [(e2e_diff, 40), (e2e_determ, 9), (e2e_variants, 7)],
                         ids=["diff", "determ", "variants"])
def test_pipelines_reproduced_end_to_end(check, num_results, config):
    with torch.no_grad():
        assert_fixture_reproduced(check, config, num_results, FOLDER)


def test_processing_size_must_be_a_multiple_of_64(config):
    model = e2e_diff.load_tiny_model(FOLDER, config, "determ")
    with pytest.raises(InputError, match="multiples of 64") as error:
        predict(model, torch.rand(2, 3, 60, 120), Options(window_size=2, overlap=0))
    assert "64x128" in error.value.fix


def test_every_geometrycrafter_fixture_file_has_a_check():
    assert model_of(FOLDER) == "geometrycrafter"
    # fixture_index.json describes the others' keys; tiny_* are the weights and configuration.
    fixtures = {p.name for p in FOLDER.iterdir() if p.suffix in (".safetensors", ".json")
                and not p.name.startswith("tiny_") and p.name != "fixture_index.json"}
    assert fixtures == {module.FIXTURE for module in check_modules("geometrycrafter")}


def test_check_fixtures_command_on_the_geometrycrafter_folder():
    result = subprocess.run([sys.executable, "-m", "engine", "check-fixtures", str(FOLDER), "--only", "windows"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("geometrycrafter fixtures in")
    assert "28/28 checks within tolerance" in result.stdout
