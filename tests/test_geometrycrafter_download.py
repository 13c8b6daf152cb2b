"""`download geometrycrafter` and `convert geometrycrafter`, offline: the golden fixtures' tiny weights laid
out as the three hub repositories lay them out, served by a real local HTTP server that answers as the hub
does (resolve URLs, X-Repo-Commit, sha256 ETags of LFS files, Range requests), resolved through huggingface_hub."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from engine.errors import InputError, ModelError  # noqa: E402
from engine.models.geometrycrafter.config import load_config  # noqa: E402
from engine.models.geometrycrafter.hub import PARTS, convert_geometrycrafter, hub_files  # noqa: E402
from engine.models.geometrycrafter.model_dir import LAYOUT, NETWORKS  # noqa: E402
from tests.addon_session import ROOT  # noqa: E402
from tests.fixture_paths import GEOMETRYCRAFTER_FIXTURES as FOLDER  # noqa: E402
from tests.fixture_paths import requires_geometrycrafter_fixtures  # noqa: E402

pytestmark = requires_geometrycrafter_fixtures
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_hub(root: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The tiny weights as the hub lays them out under root/<owner>/<name>/; returns the state dicts."""
    config = load_config(FOLDER / "tiny_config.json")
    states = {name: load_file(FOLDER / f"tiny_{name}.safetensors") for name in NETWORKS}
    for name, (repo, config_file, weights_file) in PARTS.items():
        if config_file:
            path = root / repo / config_file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"_class_name": "Tiny", **config[name]}))
        if name == "moge":
            path = root / repo / weights_file
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model_config": config["moge"], "model": states["moge"]}, path)
        elif weights_file:
            save_file(states[name], root / repo / weights_file)
    return states


class Hub(BaseHTTPRequestHandler):
    """GET/HEAD {endpoint}/<owner>/<name>/resolve/<revision>/<file>, as huggingface.co answers them."""

    root: Path
    requests: list[tuple[str, str, str]]
    drop_first: set[str]   # files whose first full GET stops halfway (a dropped connection)
    tamper: set[str]       # files served with other bytes than their ETag says
    outage: dict[str, int]  # file -> byte where its GETs stop (the connection drops) while it is listed
    sent: list[tuple[str, int, int, int]]  # (file, status, first byte, bytes sent) of every GET of a file

    def log_message(self, *args):
        pass

    def _file(self) -> tuple[Path, bytes, str] | None:
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/[^/]+/(.+)", urllib.parse.unquote(self.path.split("?")[0]))
        if not match or not (self.root / match[1] / match[2]).is_file():
            self.send_error(404)
            return None
        name = f"{match[1]}/{match[2]}"
        data = (self.root / match[1] / match[2]).read_bytes()
        lfs = not name.endswith(".json")
        etag = hashlib.sha256(data).hexdigest() if lfs else hashlib.sha1(data).hexdigest()
        if name in self.tamper:
            data = data[:-1] + bytes([data[-1] ^ 1])
        return self.root / name, data, etag

    def _headers(self, status: int, data: bytes, etag: str, length: int, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{etag}"')
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()

    def do_HEAD(self):
        found = self._file()
        if found:
            self._headers(200, found[1], found[2], len(found[1]))

    def do_GET(self):
        found = self._file()
        if not found:
            return
        path, data, etag = found
        name = str(path.relative_to(self.root))
        start = int(re.match(r"bytes=(\d+)-", self.headers.get("Range", "bytes=0-"))[1])
        self.requests.append(("GET", name, self.headers.get("Range", "")))
        if name in self.outage:
            cut = self.outage[name]
            self._headers(200, data, etag, len(data))
            self.wfile.write(data[:cut])
            self.wfile.flush()
            self.sent.append((name, 200, 0, cut))
            self.connection.shutdown(2)  # the connection drops mid-file
            return
        self.sent.append((name, 206 if start else 200, start, len(data) - start))
        if start:
            self._headers(206, data, etag, len(data) - start,
                          {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
        else:
            self._headers(200, data, etag, len(data))
        if name in self.drop_first and not start:
            self.drop_first.discard(name)
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection drops halfway
            return
        self.wfile.write(data[start:])


@pytest.fixture
def hub(tmp_path):
    states = make_hub(tmp_path / "hub")
    handler = type("TinyHub", (Hub,), {"root": tmp_path / "hub", "requests": [], "drop_first": set(),
                                       "tamper": set(), "outage": {}, "sent": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}", states
    server.shutdown()
    server.server_close()


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
