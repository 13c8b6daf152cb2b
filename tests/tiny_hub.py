"""The golden fixtures' tiny GeometryCrafter weights laid out as the three hub repositories lay them out, and a
real local HTTP server that answers as the Hugging Face hub does (resolve URLs, X-Repo-Commit, sha256 ETags of LFS
files, Range requests), for `download geometrycrafter` and the add-on's Download button, offline."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import urllib.parse
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from engine.models.geometrycrafter.config import load_config
from engine.models.geometrycrafter.hub import PARTS
from engine.models.geometrycrafter.model_dir import NETWORKS
from tests.fixture_paths import GEOMETRYCRAFTER_FIXTURES as FOLDER

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
    slow: set[str]         # files sent in 256 KiB blocks 50 ms apart (5 MB/s)
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
        if name in self.slow:  # a slow connection: the file arrives over seconds, in small blocks
            for at in range(start, len(data), 1 << 18):
                self.wfile.write(data[at:at + (1 << 18)])
                self.wfile.flush()
                time.sleep(0.05)
            return
        self.wfile.write(data[start:])


@contextmanager
def serve_hub(root: Path):
    """Lay out the tiny weights under `root` and serve them: yields (handler class, endpoint URL, state dicts);
    the handler's requests, sent, drop_first, tamper, slow and outage say what was asked and change what is served."""
    states = make_hub(root)
    handler = type("TinyHub", (Hub,), {"root": root, "requests": [], "drop_first": set(), "tamper": set(),
                                       "slow": set(), "outage": {}, "sent": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_address[1]}", states
    finally:
        server.shutdown()
        server.server_close()
