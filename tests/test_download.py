"""`python -m engine download geo4d`: resumable download + verification from a local mirror, and the
manual steps where the network refuses."""

import http.server
import shutil
import subprocess
import sys
import threading

import pytest

from engine.errors import ModelError
from engine.models.download import download_file, source_urls, verify_checkpoint
from tests.needs import torch_or_skip


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files and honours `Range: bytes=N-` (as Google Drive does), counting the bytes sent."""

    sent = 0

    def do_GET(self):
        path = self.translate_path(self.path)
        try:
            data = open(path, "rb").read()
        except OSError:
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        # Counted before writing: the client may finish reading (and the test assert) before write returns.
        RangeHandler.sent += len(data) - start
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tiny_checkpoints, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(tiny_checkpoints.model, served / "model.ckpt")
    shutil.copy(tiny_checkpoints.vae, served / "vae.ckpt")
    handler = lambda *a, **kw: RangeHandler(*a, directory=str(served), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", served
    server.shutdown()


def test_resumes_a_partial_download_and_verifies(mirror, tmp_path):
    url, served = mirror
    dest = tmp_path / "dl" / "vae.ckpt"
    dest.parent.mkdir()
    full = (served / "vae.ckpt").read_bytes()
    dest.with_name("vae.ckpt.part").write_bytes(full[:1000])
    RangeHandler.sent = 0
    download_file(source_urls(url)["vae.ckpt"], dest)
    assert dest.read_bytes() == full and RangeHandler.sent == len(full) - 1000
    assert not dest.with_name("vae.ckpt.part").exists()
    verify_checkpoint(dest, "vae.ckpt")
    with pytest.raises(ModelError, match="not a Geo4D model checkpoint"):
        verify_checkpoint(dest, "model.ckpt")


def test_progress_reports_the_bytes_and_a_cancel_keeps_the_part_to_resume(mirror, tmp_path):
    """The add-on's Cancel during a Geo4D download: the cancel raised from the progress stops it after a block;
    the .part holds what arrived and the next download continues from there."""
    from engine.errors import Cancelled

    url, served = mirror
    full = bytes(range(256)) * (10 << 12)  # 10 MiB: three blocks of download_file's 4 MiB
    (served / "big.ckpt").write_bytes(full)
    dest = tmp_path / "big.ckpt"
    heard = []

    def cancel_after_the_first_block(stage: str, fraction: float) -> None:
        heard.append((stage, fraction))
        raise Cancelled()

    with pytest.raises(Cancelled):
        download_file(f"{url}/big.ckpt", dest, progress=cancel_after_the_first_block)
    assert heard == [("downloading big.ckpt", 0.4)]
    assert not dest.exists() and dest.with_name("big.ckpt.part").read_bytes() == full[:4 << 20]
    RangeHandler.sent = 0
    download_file(f"{url}/big.ckpt", dest, progress=lambda stage, fraction: heard.append((stage, fraction)))
    assert dest.read_bytes() == full and RangeHandler.sent == len(full) - (4 << 20)
    assert heard[1:] == [("downloading big.ckpt", 0.8), ("downloading big.ckpt", 1.0)]


def test_download_command_from_mirror(mirror, tmp_path):
    url, served = mirror
    result = subprocess.run([sys.executable, "-m", "engine", "download", "geo4d", "--accept-licences", "--mirror", url,
                             "--download-dir", str(tmp_path / "dl"), "--no-convert"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for name in ("model.ckpt", "vae.ckpt"):
        assert (tmp_path / "dl" / name).read_bytes() == (served / name).read_bytes()


def test_licences_must_be_accepted_first(mirror, tmp_path):
    url, _ = mirror
    RangeHandler.sent = 0
    result = subprocess.run([sys.executable, "-m", "engine", "download", "geo4d", "--mirror", url,
                             "--download-dir", str(tmp_path / "dl"), "--no-convert"], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Geo4D's weights were not accepted" in result.stderr and "--accept-licences" in result.stderr
    assert "CreativeML Open RAIL++-M" in result.stdout  # the licences were shown
    assert RangeHandler.sent == 0 and not (tmp_path / "dl").exists()


def test_bad_download_is_set_aside(mirror, tmp_path):
    url, served = mirror
    (served / "vae.ckpt").write_bytes(b"<html>quota exceeded</html>" * 10)
    result = subprocess.run([sys.executable, "-m", "engine", "download", "geo4d", "--accept-licences", "--mirror", url,
                             "--download-dir", str(tmp_path / "dl"), "--no-convert"], capture_output=True, text=True)
    assert result.returncode == 2 and "vae.ckpt" in result.stderr and "fix:" in result.stderr
    assert (tmp_path / "dl" / "vae.ckpt.bad").exists() and not (tmp_path / "dl" / "vae.ckpt").exists()


def test_no_network_prints_the_manual_steps(tmp_path):
    torch_or_skip()  # `download` converts with torch afterwards, so its module imports it
    # Port 9 (discard) on localhost: connection refused, as behind a firewall.
    result = subprocess.run([sys.executable, "-m", "engine", "download", "geo4d", "--accept-licences", "--mirror",
                             "http://127.0.0.1:9",
                             "--download-dir", str(tmp_path / "dl"), "--out", str(tmp_path / "model")],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "http://127.0.0.1:9/model.ckpt" in result.stderr and "http://127.0.0.1:9/vae.ckpt" in result.stderr
    assert f"Put both files in {tmp_path / 'dl'}/" in result.stderr
    assert f"python -m engine convert geo4d --model-ckpt {tmp_path / 'dl'}/model.ckpt" in result.stderr
    assert f"--out {tmp_path / 'model'}" in result.stderr
    assert not (tmp_path / "model").exists()
