"""Reliability battery, checkpoints and conversion: damaged, truncated, foreign, code-carrying or NaN checkpoints
and bad `--config` files are refused with one clear error before anything is written; nothing outside the
output changes and an earlier model directory stays byte-identical."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import ModelError
from tests.reliability.conftest import assert_clear_error, assert_unchanged, run_engine, snapshot


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoints, tmp_path_factory):
    """The tiny checkpoints' bytes, and variants made from their state dicts."""
    import torch

    folder = tmp_path_factory.mktemp("variants")
    model = torch.load(tiny_checkpoints.model, weights_only=True)["state_dict"]
    vae = torch.load(tiny_checkpoints.vae, weights_only=True)["state_dict"]

    def save(name: str, state: dict) -> Path:
        torch.save({"state_dict": state}, folder / name)
        return folder / name

    key = next(k for k, v in model.items() if k.startswith("model.diffusion_model.") and v.ndim > 1)
    one_inf = dict(model)
    one_inf[key] = model[key].clone()
    one_inf[key].view(-1)[3] = float("inf")
    huge = dict(model)
    huge[key] = model[key].clone()
    huge[key].view(-1)[0] = 1e6  # finite in fp32, inf in fp16
    return {
        "model": tiny_checkpoints.model, "vae": tiny_checkpoints.vae, "pickled": tiny_checkpoints.pickled,
        "config": tiny_checkpoints.config,
        "nan vae": save("nan_vae.ckpt", {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                                          for k, v in vae.items()}),
        "inf model": save("inf_model.ckpt", one_inf),
        "huge model": save("huge_model.ckpt", huge),
    }


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    for i in range(offset, min(len(out), offset + 4096)):
        out[i] ^= 0xFF
    return bytes(out)


def _convert(checkpoints, tmp_path, model=None, vae=None, config=None, dtype="fp32"):
    from engine.models.geo4d.convert import convert_geo4d

    return convert_geo4d(model or checkpoints["model"], vae or checkpoints["vae"], tmp_path / "out", dtype,
                         config or checkpoints["config"], log=lambda message: None)


def refused(checkpoints, tmp_path, phrase, **kwargs) -> ModelError:
    before = snapshot(tmp_path)
    with pytest.raises(ModelError) as info:
        _convert(checkpoints, tmp_path, **kwargs)
    assert phrase.lower() in str(info.value).lower() and info.value.fix, str(info.value)
    assert_unchanged(tmp_path, before)
    assert not (tmp_path / "out").exists()
    return info.value


DAMAGED = {
    "flipped early in model.ckpt": ("model", lambda b: _flip(b, 900), "CRC"),
    "flipped mid model.ckpt": ("model", lambda b: _flip(b, len(b) // 2), "CRC"),
    "flipped late in model.ckpt": ("model", lambda b: _flip(b, len(b) - 9000), "model.ckpt"),
    "flipped in vae.ckpt": ("vae", lambda b: _flip(b, len(b) // 3), "CRC"),
    "truncated model.ckpt": ("model", lambda b: b[: len(b) // 2], "model.ckpt"),
    "truncated to 100 bytes": ("vae", lambda b: b[:100], "vae.ckpt"),
    "zero bytes": ("model", lambda b: b"", "model.ckpt"),
    "random bytes": ("vae", lambda b: bytes(range(256)) * 64, "vae.ckpt"),
    "a text file": ("model", lambda b: b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n", "model.ckpt"),
    "central directory cut": ("vae", lambda b: b[:-30], "vae.ckpt"),
}


@pytest.mark.parametrize("case", DAMAGED)
def test_damaged_checkpoint_is_refused_before_anything_is_written(checkpoints, tmp_path, case):
    role, damage, phrase = DAMAGED[case]
    bad = tmp_path / "in" / f"{role}.ckpt"
    bad.parent.mkdir()
    bad.write_bytes(damage(Path(checkpoints[role]).read_bytes()))
    error = refused(checkpoints, tmp_path, phrase, **{role: bad})
    assert "again" in error.fix or "official" in error.fix


def test_pickled_code_is_never_run(checkpoints, tmp_path):
    refused(checkpoints, tmp_path, "never runs code", vae=checkpoints["pickled"])


def test_all_nan_weights_are_refused(checkpoints, tmp_path):
    refused(checkpoints, tmp_path, "NaN or inf", vae=checkpoints["nan vae"])


def test_one_inf_weight_is_refused(checkpoints, tmp_path):
    refused(checkpoints, tmp_path, "(1 values)", model=checkpoints["inf model"])


def test_weights_beyond_fp16_are_refused_in_fp16(checkpoints, tmp_path):
    error = refused(checkpoints, tmp_path, "overflow torch.float16", model=checkpoints["huge model"], dtype="fp16")
    assert "bf16" in error.fix


def test_a_directory_or_a_missing_file_as_checkpoint(checkpoints, tmp_path):
    (tmp_path / "folder.ckpt").mkdir()
    refused(checkpoints, tmp_path, "does not exist", model=tmp_path / "folder.ckpt")
    refused(checkpoints, tmp_path, "does not exist", vae=tmp_path / "missing.ckpt")


def test_swapped_checkpoints_are_named(checkpoints, tmp_path):
    refused(checkpoints, tmp_path, "not a Geo4D model checkpoint", model=checkpoints["vae"], vae=checkpoints["model"])


CONFIGS = {
    "missing": (None, "cannot read"),
    "a folder": ("folder", "cannot read"),
    "not JSON": (b"model: {params: 1}\n", "not valid JSON"),
    "binary": (bytes(range(256)), "config"),
    "empty": (b"", "not valid JSON"),
    "a JSON list": (b"[1, 2]", "not a Geo4D config"),
    "an empty object": (b"{}", "lacks model.params.unet_config.params"),
    "no point-map VAE": (None, "lacks pointmap_vae_config.params"),
    "params not an object": (b'{"model": {"params": 5}, "pointmap_vae_config": {"params": {}}}', "lacks"),
    "yaml_equivalent not an object": (b'{"yaml_equivalent": 3}', "lacks"),
    "nested too deep": (b"[" * 100000 + b"]" * 100000, "config"),
}


@pytest.mark.parametrize("case", CONFIGS)
def test_a_bad_config_is_refused(checkpoints, tmp_path, case):
    data, phrase = CONFIGS[case]
    config = tmp_path / "cfg" / "config.json"
    config.parent.mkdir()
    if data == "folder":
        config.mkdir()
    elif case == "no point-map VAE":
        full = json.loads(Path(checkpoints["config"]).read_text())["yaml_equivalent"]
        del full["pointmap_vae_config"]
        config.write_text(json.dumps(full))
    elif data is not None:
        config.write_bytes(data)
    refused(checkpoints, tmp_path, phrase, config=config)


def test_cli_convert_of_a_corrupted_checkpoint_is_one_clear_error(checkpoints, tmp_path):
    bad = tmp_path / "in" / "model.ckpt"
    bad.parent.mkdir()
    bad.write_bytes(_flip(Path(checkpoints["model"]).read_bytes(), 2000))
    before = snapshot(tmp_path)
    result = run_engine("convert", "geo4d", "--model-ckpt", bad, "--vae-ckpt", checkpoints["vae"],
                        "--out", tmp_path / "out", "--config", checkpoints["config"])
    assert_clear_error(result, "CRC", "download it again")
    assert_unchanged(tmp_path, before)


def test_cli_convert_with_a_bad_config_is_one_clear_error(checkpoints, tmp_path):
    config = tmp_path / "config.json"
    config.write_text("{not json")
    result = run_engine("convert", "geo4d", "--model-ckpt", checkpoints["model"], "--vae-ckpt", checkpoints["vae"],
                        "--out", tmp_path / "out", "--config", config)
    assert_clear_error(result, "not valid JSON", "--config")
    assert not (tmp_path / "out").exists()


def test_a_failed_conversion_leaves_the_earlier_model_directory_byte_identical(checkpoints, tiny_model_dir,
                                                                                tmp_path):
    import shutil

    shutil.copytree(tiny_model_dir, tmp_path / "out")
    before = snapshot(tmp_path)
    with pytest.raises(ModelError, match="NaN"):
        _convert(checkpoints, tmp_path, vae=checkpoints["nan vae"])
    assert_unchanged(tmp_path, before)
