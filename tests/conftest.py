"""Shared fixtures: tiny Geo4D checkpoints in the official Lightning layout, and their conversion; the built
add-on zip and a copy of the real clip (add-on tests); the synthetic bundle and the importer's operators
(importer tests).

torch is imported inside the fixtures that need it (which skip without it), so the add-on, importer and torch-free
engine tests also run in a venv without torch (the Python 3.13 lane)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import build_addon
from tests.addon_session import CLIP
from tests.fixture_paths import GEO4D_FIXTURES, GEOMETRYCRAFTER_FIXTURES, requires_geo4d_fixtures
from tests.fixture_paths import requires_geometrycrafter_fixtures
from tests.needs import torch_or_skip
from tests.synthetic_bundle import write_synthetic_bundle

TINY_CONFIG = GEO4D_FIXTURES / "tiny_config.json"


class PickledConfig:
    """Stands for the config objects some Lightning checkpoints pickle: loading it needs code."""

    def __init__(self):
        self.lr = 1e-4


@dataclass
class TinyCheckpoints:
    model: Path     # {"state_dict": every key of the tiny LatentVisualDiffusion, "global_step": 0}
    vae: Path       # {"state_dict": {"model.<point-map VAE key>": ...}}
    pickled: Path   # a vae.ckpt that also holds a pickled class instance
    config: Path    # the tiny architecture (tiny_config.json)


def _skip_without_fixtures() -> None:
    """What requires_geo4d_fixtures does, for every test that reaches the fixtures through conftest."""
    if requires_geo4d_fixtures.args[0]:
        pytest.skip(requires_geo4d_fixtures.kwargs["reason"])


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    """The golden fixtures' tiny architecture (tiny_config.json), loaded."""
    _skip_without_fixtures()
    from engine.models.geo4d.config import load_config

    return load_config(TINY_CONFIG)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> TinyCheckpoints:
    _skip_without_fixtures()
    torch = torch_or_skip()
    from safetensors.torch import load_file

    folder = tmp_path_factory.mktemp("checkpoints")
    model_state = load_file(GEO4D_FIXTURES / "tiny_weights.safetensors")
    vae_state = load_file(GEO4D_FIXTURES / "tiny_pointmap_vae.safetensors")
    torch.save({"state_dict": model_state, "global_step": 0, "epoch": 0}, folder / "model.ckpt")
    torch.save({"state_dict": vae_state}, folder / "vae.ckpt")
    torch.save({"state_dict": vae_state, "hyper_parameters": PickledConfig()}, folder / "pickled.ckpt")
    return TinyCheckpoints(folder / "model.ckpt", folder / "vae.ckpt", folder / "pickled.ckpt", TINY_CONFIG)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_checkpoints, tmp_path_factory) -> Path:
    """The tiny checkpoints converted in float32 (so results can be compared with the fixtures)."""
    from engine.models.geo4d.convert import convert_geo4d

    out = tmp_path_factory.mktemp("models") / "geo4d"
    return convert_geo4d(tiny_checkpoints.model, tiny_checkpoints.vae, out, "fp32", tiny_checkpoints.config,
                         log=lambda message: None)


@pytest.fixture(scope="session")
def tiny_modules(tiny_config):
    """The fixture folder's tiny Geo4D networks loaded straight from its safetensors (no conversion),
    with the official constant context of the end-to-end fixture."""
    torch_or_skip()
    from safetensors.torch import load_file

    from engine.models.geo4d.checks.unet_forward import load_tiny_unet
    from engine.models.geo4d.checks.vae import load_tiny_vaes
    from engine.models.geo4d.weights import Geo4DModules

    vae, pointmap_vae = load_tiny_vaes(GEO4D_FIXTURES, tiny_config)
    context = load_file(GEO4D_FIXTURES / "e2e_window.safetensors")["c_crossattn"]
    return Geo4DModules(load_tiny_unet(GEO4D_FIXTURES, tiny_config), vae, pointmap_vae, context, tiny_config,
                        GEO4D_FIXTURES)


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory) -> Path:
    return build_addon.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture
def clip(tmp_path) -> Path:
    """A copy of the real clip that a test may delete or damage."""
    return Path(shutil.copy(CLIP, tmp_path / "shot.mp4"))


@pytest.fixture(scope="module")
def importer_operators():
    """The importer's operators (bpy.ops.parallax.set_origin, ...) registered in this test process's bpy."""
    bpy = pytest.importorskip("bpy")
    from blender_addon.importer import classes

    for cls in classes:
        bpy.utils.register_class(cls)
    yield
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)


@pytest.fixture(scope="module")
def plate_bundle(tmp_path_factory):
    """tests/plate_clip.py's bundle with its plate (bundle, Reconstruction, the clip's first file, the plate frames),
    written once per test module (needs bpy and OpenEXR, imported here so that other lanes never load them)."""
    from tests.plate_clip import write_plate_bundle

    return write_plate_bundle(tmp_path_factory.mktemp("plate"))


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    """(bundle folder, its Reconstruction): the default synthetic scene written once; tests must not change it."""
    return write_synthetic_bundle(tmp_path_factory.mktemp("bundle") / "bundle")


# The tiny GeometryCrafter's windows: 8 frames (the real model's are 110), so a short clip has several.
TINY_GC_WINDOW = 8


@pytest.fixture(scope="session")
def tiny_gc_model_dir(tmp_path_factory) -> Path:
    """A converted GeometryCrafter directory (fp32) of the golden fixtures' tiny random weights and
    configuration, written by the same writer as `convert geometrycrafter`."""
    if requires_geometrycrafter_fixtures.args[0]:
        pytest.skip(requires_geometrycrafter_fixtures.kwargs["reason"])
    torch_or_skip()  # the lean lane has no torch (and so no safetensors.torch)
    from safetensors.torch import load_file

    from engine.models.geometrycrafter.config import load_config
    from engine.models.geometrycrafter.model_dir import LAYOUT, NETWORKS

    out = tmp_path_factory.mktemp("models") / "geometrycrafter"
    states = {name: load_file(GEOMETRYCRAFTER_FIXTURES / f"tiny_{name}.safetensors") for name in NETWORKS}
    meta = {"config": load_config(GEOMETRYCRAFTER_FIXTURES / "tiny_config.json"), "window_length": TINY_GC_WINDOW}
    LAYOUT.write(out, states, meta, "fp32", log=lambda message: None)
    return out
