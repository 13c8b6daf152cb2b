"""Conversion of Lightning-style Geo4D checkpoints and loading of converted model directories."""

import json
import shutil
import subprocess
import sys

import pytest

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from tests.fixture_paths import GEO4D_FIXTURES, requires_geo4d_fixtures  # noqa: E402
from engine.errors import ModelError  # noqa: E402
from engine.models.geo4d.convert import convert_geo4d  # noqa: E402
from engine.models.geo4d.model_dir import verify_model_dir  # noqa: E402
from engine.models.geo4d.weights import load_geo4d  # noqa: E402


def test_converted_directory_holds_exactly_the_inference_weights(tiny_model_dir):
    files = sorted(p.name for p in tiny_model_dir.iterdir() if p.is_file())  # an ONNX cache may sit beside them
    assert files == ["config.json", "context.safetensors", "manifest.json", "pointmap_vae.safetensors",
                     "unet.safetensors", "vae.safetensors"]
    source = load_file(GEO4D_FIXTURES / "tiny_weights.safetensors")
    unet = load_file(tiny_model_dir / "unet.safetensors")
    prefix = "model.diffusion_model."
    assert set(unet) == {k[len(prefix):] for k in source if k.startswith(prefix)}
    for key, value in unet.items():
        assert torch.equal(value, source[prefix + key])
    vae = load_file(tiny_model_dir / "vae.safetensors")
    assert set(vae) == {k[len("first_stage_model."):] for k in source if k.startswith("first_stage_model.")}
    assert any(k.startswith("decoder_adaptor.") for k in vae) and any(k.startswith("encoder_adaptor.") for k in vae)
    pm = load_file(tiny_model_dir / "pointmap_vae.safetensors")
    assert set(pm) == {k[len("model."):] for k in load_file(GEO4D_FIXTURES / "tiny_pointmap_vae.safetensors")}
    meta = json.loads((tiny_model_dir / "config.json").read_text())
    assert meta["dtype"] == "fp32"
    assert meta["config"]["model"]["params"]["unet_config"]["params"]["model_channels"] == 32


def test_constant_context_matches_official_conditioning(tiny_model_dir):
    context = load_file(tiny_model_dir / "context.safetensors")["context"]
    expected = load_file(GEO4D_FIXTURES / "conditioning.safetensors")["c_crossattn"]
    assert context.shape == expected.shape == (1, 333, 16)
    assert torch.allclose(context, expected, atol=1e-5, rtol=1e-5)


def test_fp16_conversion_and_load(tiny_checkpoints, tmp_path):
    out = convert_geo4d(tiny_checkpoints.model, tiny_checkpoints.vae, tmp_path / "g", "fp16",
                        tiny_checkpoints.config, log=lambda m: None)
    unet = load_file(out / "unet.safetensors")
    source = load_file(GEO4D_FIXTURES / "tiny_weights.safetensors")
    key = "input_blocks.0.0.weight"
    assert unet[key].dtype == torch.float16
    assert torch.equal(unet[key], source["model.diffusion_model." + key].half())
    modules = load_geo4d(out, "cpu", torch.float32)
    assert modules.context.shape == (1, 333, 16)
    assert not any(p.is_meta for m in (modules.unet, modules.vae, modules.pointmap_vae) for p in m.parameters())
    assert not list(tmp_path.glob(".g.*"))  # no temporary folder left


def test_pickled_code_checkpoint_is_refused(tiny_checkpoints, tmp_path):
    with pytest.raises(ModelError, match="pickled Python code") as info:
        convert_geo4d(tiny_checkpoints.model, tiny_checkpoints.pickled, tmp_path / "out", "fp16",
                      tiny_checkpoints.config, log=lambda m: None)
    assert "PickledConfig" in str(info.value)
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


def test_swapped_and_truncated_checkpoints_are_refused(tiny_checkpoints, tmp_path):
    with pytest.raises(ModelError, match="not a Geo4D model checkpoint"):
        convert_geo4d(tiny_checkpoints.vae, tiny_checkpoints.model, tmp_path / "out", "fp16",
                      tiny_checkpoints.config, log=lambda m: None)
    truncated = tmp_path / "model.ckpt"
    truncated.write_bytes(tiny_checkpoints.model.read_bytes()[:100_000])
    with pytest.raises(ModelError, match="not a readable PyTorch checkpoint"):
        convert_geo4d(truncated, tiny_checkpoints.vae, tmp_path / "out", "fp16", tiny_checkpoints.config,
                      log=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_checkpoint_of_another_architecture_is_refused(tiny_checkpoints, tmp_path):
    # The tiny weights against the full-size config: every shape differs.
    with pytest.raises(ModelError, match="do not match the Geo4D architecture"):
        convert_geo4d(tiny_checkpoints.model, tiny_checkpoints.vae, tmp_path / "out", log=lambda m: None)


def test_convert_cli_refuses_with_exit_code_and_message(tiny_checkpoints, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "engine", "convert", "geo4d", "--model-ckpt", str(tiny_checkpoints.model),
         "--vae-ckpt", str(tiny_checkpoints.pickled), "--out", str(tmp_path / "out"),
         "--config", str(tiny_checkpoints.config)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "pickled Python code" in result.stderr and "fix:" in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_and_corrupt_model_directories_are_named(tiny_model_dir, tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        verify_model_dir(tmp_path / "nothing")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "vae.safetensors").unlink()
    with pytest.raises(ModelError, match=r"vae\.safetensors is missing") as info:
        load_geo4d(broken)
    assert "python -m engine convert geo4d" in str(info.value)
    shutil.copy(tiny_model_dir / "vae.safetensors", broken / "vae.safetensors")
    data = bytearray((broken / "unet.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (broken / "unet.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"unet\.safetensors is corrupt"):
        load_geo4d(broken)
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"manifest\.json is corrupt"):
        load_geo4d(broken)


@requires_geo4d_fixtures
def test_checkpoint_with_another_noise_schedule_is_refused(tmp_path):
    state = load_file(GEO4D_FIXTURES / "tiny_weights.safetensors")
    state["alphas_cumprod"] = torch.linspace(0.999, 0.001, 1000)  # plain linear: not zero-terminal-SNR
    torch.save({"state_dict": state}, tmp_path / "model.ckpt")
    torch.save({"state_dict": load_file(GEO4D_FIXTURES / "tiny_pointmap_vae.safetensors")}, tmp_path / "vae.ckpt")
    with pytest.raises(ModelError, match="alphas_cumprod differs from the noise schedule"):
        convert_geo4d(tmp_path / "model.ckpt", tmp_path / "vae.ckpt", tmp_path / "out", "fp16",
                      GEO4D_FIXTURES / "tiny_config.json", log=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_the_loaded_model_holds_only_what_inference_runs_and_predicts_the_same(tiny_model_dir):
    """The parts no window runs (weights.NOT_RUN: the point-map encoder, the adaptors the path never calls) are
    loaded strictly, then dropped: the loaded model holds the rest, and predicts exactly what the complete
    networks of the same files do."""
    import numpy as np

    from engine.models.geo4d.model import Geo4D, SamplingOptions, TorchBackend
    from engine.models.geo4d.model_dir import LAYOUT
    from engine.models.geo4d.weights import NOT_RUN, Geo4DModules, build_modules
    from engine.windows.schedule import window_starts

    loaded = load_geo4d(tiny_model_dir, "cpu", torch.float32)
    with torch.device("meta"):
        networks = build_modules(loaded.config)
    for name, module in networks.items():
        LAYOUT.load_network(module, tiny_model_dir, name)
    complete = Geo4DModules(**networks, context=loaded.context, config=loaded.config, directory=tiny_model_dir)
    for name, parts in NOT_RUN.items():
        full, kept = networks[name], getattr(loaded, name)
        assert not any(hasattr(kept, part) for part in parts)
        dropped = sum(p.numel() for part in parts for p in getattr(full, part).parameters())
        assert dropped > 0
        assert sum(p.numel() for p in kept.parameters()) == sum(p.numel() for p in full.parameters()) - dropped
    frames = np.random.default_rng(5).integers(0, 256, (16, 32, 64, 3), dtype=np.uint8)
    options = SamplingOptions(steps=2, seed=7)
    ours, theirs = (Geo4D(TorchBackend(modules), loaded.config, loaded.context, "cpu").predict(
        frames, 24.0, window_starts(16, 4), options) for modules in (loaded, complete))
    for name in ("pointmap", "pointmap_conf", "disparity", "ray_dirs", "ray_moments"):
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name
