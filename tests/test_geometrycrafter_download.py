"""`download geometrycrafter` and `convert geometrycrafter`, offline: the golden fixtures' tiny weights laid
out as the three hub repositories lay them out, served by a real local HTTP server that answers as the hub
does (tests/tiny_hub.py), resolved through huggingface_hub."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from engine.errors import InputError, ModelError  # noqa: E402
from engine.models.geometrycrafter.hub import PARTS, convert_geometrycrafter, hub_files  # noqa: E402
from engine.models.geometrycrafter.model_dir import LAYOUT, NETWORKS  # noqa: E402
from tests.addon_session import ROOT  # noqa: E402
from tests.fixture_paths import requires_geometrycrafter_fixtures  # noqa: E402
from tests.tiny_hub import make_hub, serve_hub  # noqa: E402

pytestmark = requires_geometrycrafter_fixtures


@pytest.fixture
def hub(tmp_path):
    with serve_hub(tmp_path / "hub") as served:
        yield served


def _download(endpoint: str, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1")
    command = [sys.executable, "-m", "engine", "download", "geometrycrafter", "--endpoint", endpoint,
               "--download-dir", str(tmp_path / "downloads"), "--out", str(tmp_path / "model"), *flags]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)


def test_download_recovers_a_dropped_file_verifies_and_converts(hub, tmp_path):
    handler, endpoint, states = hub
    unet = f"{PARTS['unet_diff'][0]}/{PARTS['unet_diff'][2]}"
    handler.drop_first.add(unet)
    first = _download(endpoint, tmp_path, "--accept-licences")
    if first.returncode != 0:  # huggingface_hub may leave the dropped file for the next run instead of retrying
        assert "run the same command again" in first.stderr, first.stdout + first.stderr
        first = _download(endpoint, tmp_path, "--accept-licences")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "research" in first.stdout and "Stability AI Community License" in first.stdout
    # The dropped file was fetched again from where it stopped and arrived whole: the converted weights below
    # equal the served ones.
    resumed = [r for r in handler.requests if r[1] == unet]
    assert len(resumed) == 2 and resumed[0][2] == "" and resumed[1][2].startswith("bytes=")
    assert {r[1] for r in handler.requests} == {f"{repo}/{f}" for repo, files in hub_files().items() for f in files}

    config = LAYOUT.verify(tmp_path / "model")
    assert config["window_length"] == 110 and config["config"]["moge"]["encoder"] == "dinov2_vitl14_gc_tiny_a"
    for name in NETWORKS:
        stored = load_file(tmp_path / "model" / f"{name}.safetensors")
        kept = torch.float32 if name in ("moge", "point_map_vae") else torch.float16
        assert stored.keys() == states[name].keys()
        assert all(torch.equal(stored[k], v.to(kept)) for k, v in states[name].items()), name


def test_a_cut_download_resumes_from_the_byte_where_it_stopped(hub, tmp_path):
    """A file cut mid-transfer: the command stops and keeps the bytes that arrived
    in <file>.part; the next run asks only for the rest (a Range request from that byte) and the file is whole."""
    handler, endpoint, _ = hub
    repo, name = PARTS["unet_diff"][0], PARTS["unet_diff"][2]
    served = (tmp_path / "hub" / repo / name).read_bytes()
    cut = len(served) // 3 + 12345  # not on a chunk boundary
    handler.outage[f"{repo}/{name}"] = cut
    first = _download(endpoint, tmp_path, "--accept-licences", "--no-convert")
    assert first.returncode != 0 and "Traceback" not in first.stderr
    assert f"stopped after {cut:,} of {len(served):,} bytes" in first.stderr and "it resumes" in first.stderr
    partial = list((tmp_path / "downloads" / repo).rglob("*.part"))
    assert [p.stat().st_size for p in partial] == [cut]  # the bytes that arrived are kept
    assert partial[0].read_bytes() == served[:cut]

    del handler.outage[f"{repo}/{name}"]
    second = _download(endpoint, tmp_path, "--accept-licences", "--no-convert")
    assert second.returncode == 0, second.stdout + second.stderr
    sent = [entry for entry in handler.sent if entry[0] == f"{repo}/{name}"]
    assert len(sent) == 2 and sent[0] == (f"{repo}/{name}", 200, 0, cut)  # cut mid-file
    assert sent[1] == (f"{repo}/{name}", 206, cut, len(served) - cut)  # the next run: only the rest
    assert ("GET", f"{repo}/{name}", f"bytes={cut}-") in handler.requests  # the Range header of the second run
    downloaded = tmp_path / "downloads" / repo / name
    assert hashlib.sha256(downloaded.read_bytes()).hexdigest() == hashlib.sha256(served).hexdigest()
    assert not list((tmp_path / "downloads" / repo).rglob("*.part"))


def test_licences_must_be_accepted_first(hub, tmp_path):
    handler, endpoint, _ = hub
    result = _download(endpoint, tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "were not accepted" in result.stderr and "--accept-licences" in result.stderr
    assert "research" in result.stdout
    assert handler.requests == [] and not (tmp_path / "downloads").exists()


def test_a_file_that_differs_from_the_hub_is_refused(hub, tmp_path):
    handler, endpoint, _ = hub
    bad = f"{PARTS['moge'][0]}/{PARTS['moge'][2]}"
    handler.tamper.add(bad)
    result = _download(endpoint, tmp_path, "--accept-licences")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "differs from the hub's file" in result.stderr
    assert not (tmp_path / "downloads" / bad).exists() and not (tmp_path / "model").exists()


def test_convert_refuses_missing_files_foreign_shapes_and_pickled_code(tmp_path):
    hub_dir = tmp_path / "hub"
    make_hub(hub_dir)
    moge = hub_dir / PARTS["moge"][0] / PARTS["moge"][2]
    checkpoint = torch.load(moge, weights_only=True)
    torch.save({**checkpoint, "optimizer": PickledThing()}, moge)
    with pytest.raises(ModelError, match="loads safely"):
        convert_geometrycrafter(hub_dir, tmp_path / "model", log=lambda m: None)
    checkpoint["model"] = {k: v for k, v in checkpoint["model"].items() if not k.startswith("head.")}
    torch.save(checkpoint, moge)
    with pytest.raises(ModelError, match="moge weights .* do not match"):
        convert_geometrycrafter(hub_dir, tmp_path / "model", log=lambda m: None)
    moge.unlink()
    with pytest.raises(InputError, match="model.pt is missing"):
        convert_geometrycrafter(hub_dir, tmp_path / "model", log=lambda m: None)
    assert not (tmp_path / "model").exists()


class PickledThing:
    """Loading it needs code: weights_only loading refuses it."""


def test_a_cancel_while_converting_leaves_the_model_folder_as_it_was(tmp_path, tiny_gc_model_dir):
    """The add-on's Cancel during the conversion (engine.models.weights): the cancel raised from the progress of
    the writing step removes the staging folder, and the converted model already there stays as it was."""
    from engine.errors import Cancelled
    from engine.models.weights import convert_weights

    make_hub(tmp_path / "hub")
    model = tmp_path / "models" / "geometrycrafter"
    shutil.copytree(tiny_gc_model_dir, model)
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    stages = []

    def progress(stage: str, fraction: float) -> None:
        stages.append(stage)
        if stage == "converting: writing unet_determ.safetensors (fp16)":
            raise Cancelled()

    with pytest.raises(Cancelled):
        convert_weights("geometrycrafter", tmp_path / "hub", model, progress)
    assert "converting: writing unet_diff.safetensors (fp16)" in stages  # it was writing when cancelled
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before
    assert [p.name for p in model.parent.iterdir()] == ["geometrycrafter"]  # no staging left beside it
