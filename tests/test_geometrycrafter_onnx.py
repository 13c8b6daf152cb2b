"""GeometryCrafter's UNet in ONNX Runtime (CPU provider) agrees with the official fixtures and with the torch
UNet (tiny fixture model, both variants, float32).

Tolerance: the fixtures' 1e-4 for stages replayed from stored inputs (atol = rtol), the README's; ONNX Runtime's
kernels sum in another order than torch's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.needs import torch_or_skip

torch_or_skip()
pytest.importorskip("onnxruntime")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from engine.models.geometrycrafter.checks import ATOL  # noqa: E402
from engine.models.geometrycrafter.checks.unet_forward import FIXTURE, load_tiny_unet  # noqa: E402
from engine.models.geometrycrafter.config import load_config  # noqa: E402
from engine.models.geometrycrafter.denoise import DETERM_TIMESTEP, added_time_ids  # noqa: E402
from engine.models.geometrycrafter.onnx_unet import OnnxSpatioTemporalUNet, export_unet  # noqa: E402
from engine.errors import ModelError  # noqa: E402
from engine.formats.bundle import Bundle, read_bundle  # noqa: E402
from engine.formats.exr import read_depth_exr  # noqa: E402
from tests.addon_session import CLIP, ENGINE_ENV, ROOT  # noqa: E402
from tests.fixture_paths import GEOMETRYCRAFTER_FIXTURES as FOLDER  # noqa: E402
from tests.fixture_paths import requires_geometrycrafter_fixtures  # noqa: E402

pytestmark = requires_geometrycrafter_fixtures


@pytest.fixture(scope="module", params=["diff", "determ"])
def unets(request, tmp_path_factory):
    """(variant, torch UNet, ONNX Runtime UNet exported from it)."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    unet = load_tiny_unet(FOLDER, load_config(FOLDER / "tiny_config.json"), request.param)
    path = export_unet(unet, tmp_path_factory.mktemp("onnx") / "unet-float32.onnx")
    return request.param, unet, OnnxSpatioTemporalUNet(path, "cpu")


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=ATOL)


def test_onnx_unet_reproduces_the_official_fixture(unets):
    variant, _, onnx_unet = unets
    data = load_file(FOLDER / FIXTURE)
    cases = ["determ"] if variant == "determ" else ["caseA", "caseB"]
    for case in cases:
        out = onnx_unet(data[f"{case}.sample"], data[f"{case}.timestep"], data[f"{case}.encoder_hidden_states"],
                        data[f"{case}.added_time_ids"])
        assert_close(out, data[f"{case}.out"])
        assert out.abs().max() > 0.1  # the fixture's output is not near zero


@pytest.mark.parametrize("batch, frames, latent", [(1, 7, (16, 16)), (2, 2, (8, 8))])
def test_onnx_unet_equals_torch_at_other_sizes(unets, batch, frames, latent):
    """The graph's batch, frame and latent axes are dynamic (it was traced at 1 x 3 frames x 8x16)."""
    _, unet, onnx_unet = unets
    generator = torch.Generator().manual_seed(frames)
    sample = torch.randn(batch, frames, unet.conv_in.in_channels, *latent, generator=generator)
    context = torch.randn(batch, frames, 32, generator=generator)
    ids = added_time_ids().expand(batch, 3)
    with torch.no_grad():
        expected = unet(sample, DETERM_TIMESTEP, context, ids)
    assert_close(onnx_unet(sample, DETERM_TIMESTEP, context, ids), expected)


# The end-to-end comparison: 14 frames (3..16) of the real clip at 64x128 in windows of 8, stride 6 (two windows),
# as tests/test_geometrycrafter_reconstruct.py runs the torch runtime.
FRAMES, SIZE, STRIDE = (3, 17), (64, 128), 6


def _reconstruct(model_dir: Path, out: Path, runtime: str, variant: str) -> Bundle:
    command = [sys.executable, "-m", "engine", "reconstruct", str(CLIP), "--out", str(out),
               "--model", "geometrycrafter", "--variant", variant, "--model-dir", str(model_dir),
               "--runtime", runtime, "--frames", f"{FRAMES[0]}:{FRAMES[1]}", "--size", *map(str, SIZE),
               "--stride", str(STRIDE), "--steps", "2", "--device", "cpu"]
    result = subprocess.run(command, cwd=ROOT, env=ENGINE_ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"fp32, {runtime} runtime" in result.stdout + result.stderr
    return read_bundle(out)


@pytest.mark.parametrize("variant", ["determ", "diff"])
def test_reconstruct_with_the_onnx_runtime_equals_torch(variant, tiny_gc_model_dir, tmp_path):
    """`reconstruct --runtime onnx` (the UNet in ONNX Runtime, exported into the model directory's onnx/ on first
    use) gives the torch runtime's bundle on the real clip: depth, cameras and intrinsics."""
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_gc_model_dir, model_dir)
    torch_bundle = _reconstruct(model_dir, tmp_path / "torch", "torch", variant)
    onnx_bundle = _reconstruct(model_dir, tmp_path / "onnx", "onnx", variant)
    assert [p.name for p in (model_dir / "onnx").iterdir()] == [_export_name(model_dir, variant)]
    assert len(onnx_bundle.frames) == len(torch_bundle.frames) == FRAMES[1] - FRAMES[0]

    abs_rel, rotation, focal = [], [], []
    for a, b in zip(torch_bundle.frames, onnx_bundle.frames):
        depth_a, _ = read_depth_exr(a.depth_path)
        depth_b, _ = read_depth_exr(b.depth_path)
        both = (depth_a > 0) & (depth_b > 0)
        assert both.mean() > 0.2 and np.mean((depth_a > 0) != (depth_b > 0)) <= 1e-3
        abs_rel.append(np.mean(np.abs(depth_b[both] - depth_a[both]) / depth_a[both]))
        rotation.append(np.abs(b.camera_to_world[:3, :3] - a.camera_to_world[:3, :3]).max())
        focal.append(abs(b.K[0, 0] / a.K[0, 0] - 1))
    centres = [np.array([f.camera_to_world[:3, 3] for f in bundle.frames]) for bundle in (torch_bundle, onnx_bundle)]
    path = np.linalg.norm(np.diff(centres[0], axis=0), axis=1).sum()
    position = np.linalg.norm(centres[1] - centres[0], axis=1).max() / path
    print(f"{variant}: depth Abs Rel {max(abs_rel):.1e}, rotation {max(rotation):.1e}, position {position:.1e} "
          f"of the path ({path:.3f}), focal {max(focal):.1e}")
    # The fixtures' end-to-end tolerance, 1e-3, for each (relative) difference.
    assert path > 0 and max(abs_rel) <= 1e-3 and max(rotation) <= 1e-3 and position <= 1e-3 and max(focal) <= 1e-3


def _export_name(model_dir: Path, variant: str) -> str:
    """The cached export's name: the weights file's sha256 (its own, recomputed here) and the dtype."""
    from engine.models.model_dir import sha256_file

    return f"unet_{variant}-{sha256_file(model_dir / f'unet_{variant}.safetensors')}-float32.onnx"


def test_the_export_is_cached_per_weights_hash(tiny_gc_model_dir, tmp_path):
    """The first onnx load exports the UNet into onnx/, the next reuses it; weights converted again (another
    sha256) export anew even where the old export is still there, and the new graph is the new weights'."""
    from engine.models.geometrycrafter import load
    from engine.models.geometrycrafter.model_dir import LAYOUT, NETWORKS

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_gc_model_dir, model_dir)
    first = load(model_dir, "cpu", "float32", "onnx", "determ").network.unet
    assert first.path.parent == model_dir / "onnx" and first.path.name == _export_name(model_dir, "determ")
    written = first.path.stat().st_mtime_ns
    assert load(model_dir, "cpu", "float32", "onnx", "determ").network.unet.path == first.path
    assert first.path.stat().st_mtime_ns == written and len(list((model_dir / "onnx").iterdir())) == 1
    assert LAYOUT.is_model_dir(model_dir)  # the cache is the directory's own: converting again may replace it

    # Other UNet weights, written by the converter's writer; the old export copied back beside them.
    states = {name: load_file(model_dir / f"{name}.safetensors") for name in NETWORKS}
    states["unet_determ"]["conv_out.weight"] = states["unet_determ"]["conv_out.weight"] * 2
    stale = tmp_path / "stale.onnx"
    shutil.copy(first.path, stale)
    LAYOUT.write(model_dir, states, {k: v for k, v in json.loads((model_dir / "config.json").read_text()).items()
                                     if k not in ("model", "format_version", "dtype")}, "fp32", log=lambda m: None)
    (model_dir / "onnx").mkdir()
    shutil.copy(stale, model_dir / "onnx" / first.path.name)
    second = load(model_dir, "cpu", "float32", "onnx", "determ").network.unet
    assert second.path.name == _export_name(model_dir, "determ") != first.path.name
    torch_unet = load(model_dir, "cpu", "float32", "torch", "determ").network.unet
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 2, torch_unet.conv_in.in_channels, 8, 8, generator=generator)
    context = torch.randn(1, 2, 32, generator=generator)
    with torch.no_grad():
        expected = torch_unet(sample, DETERM_TIMESTEP, context, added_time_ids())
    assert_close(second(sample, DETERM_TIMESTEP, context, added_time_ids()), expected)
    old = OnnxSpatioTemporalUNet(stale)(sample, DETERM_TIMESTEP, context, added_time_ids())
    assert (old - expected).abs().max() > 0.1  # the stale graph would have given other numbers


def test_a_foreign_onnx_entry_is_refused(tiny_gc_model_dir, tmp_path):
    """An `onnx` there that is not a folder (here a file of the user's) is named and left as it is."""
    from engine.models.geometrycrafter import load

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_gc_model_dir, model_dir)
    (model_dir / "onnx").write_text("the user's notes")
    with pytest.raises(ModelError, match="is not the folder of ONNX graphs"):
        load(model_dir, "cpu", "float32", "onnx", "determ")
    assert (model_dir / "onnx").read_text() == "the user's notes"
    with pytest.raises(ModelError, match="float32 or float16, not torch.bfloat16"):
        load(tiny_gc_model_dir, "cpu", "bfloat16", "onnx", "determ")


def test_onnx_runtime_reads_the_unet_after_the_torch_unet_is_gone(tiny_gc_model_dir, tmp_path, monkeypatch):
    """`--runtime onnx` loads the torch UNet to export from it, then lets it go before ONNX Runtime reads its own
    copy (first load: export; second load: the cached graph): one copy of the UNet's weights at a time."""
    from engine.models.geometrycrafter import load, onnx_unet
    from engine.models.geometrycrafter.unet import SpatioTemporalUNet
    from tests.sessions_alive import count_networks_at_sessions

    unets, alive_at_session = count_networks_at_sessions(monkeypatch, onnx_unet.OnnxSpatioTemporalUNet,
                                                         (SpatioTemporalUNet,))
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_gc_model_dir, model_dir)
    before = unets()
    models = [load(model_dir, "cpu", "float32", "onnx", "determ") for _ in range(2)]
    assert alive_at_session == [before, before]
    assert all(isinstance(m.network.unet, onnx_unet.OnnxSpatioTemporalUNet) for m in models)
