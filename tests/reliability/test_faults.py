"""Reliability battery, area "faults": real kills, real signals, a real full disk (a small tmpfs).

- SIGKILL while a bundle is written leaves hidden staging; the next run removes it (only Parallax's, of
  processes that are gone) and the earlier bundle stays byte-identical (issue 9, defect 7);
- SIGTERM makes the engine remove what it was writing and exit 143, as a command and as `serve`; the
  add-on waits for that before it escalates to SIGKILL;
- a crash between the two renames of a replacement leaves the old bundle in `.NAME.parallax-old`: the
  next run puts it back when the new one never arrived;
- a full disk is a clear error: before the model runs for its spill files (posix_fallocate), and while a
  bundle is written; a processing size that cannot fit in memory is refused with the figures (defect 6).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.formats import atomic
from engine.formats.bundle import read_bundle
from engine.windows.predictions import maps_bytes, new_maps
from tests.reliability.conftest import (ROOT, assert_clear_error, assert_unchanged, fill, run_main, snapshot,
                                        start_engine)
from tests.reliability.made import copy_tree, make_bundle, make_windows
from tests.needs import torch_or_skip

HOST = getattr(atomic, "_HOST", "host")  # (getattr: the battery also runs against older engines)


@pytest.fixture(scope="module")
def windows(tmp_path_factory) -> Path:
    return make_windows(tmp_path_factory.mktemp("windows") / "windows")


@pytest.fixture(scope="module")
def big_windows(tmp_path_factory) -> Path:
    """Predictions whose bundle takes about a second to write: long enough to be killed while writing."""
    return make_windows(tmp_path_factory.mktemp("big") / "windows", frames=48, size=(96, 160))


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory, windows) -> Path:
    return make_bundle(tmp_path_factory.mktemp("good") / "bundle", windows)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _wait_for_staging(folder: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Return as soon as `proc` has begun writing its bundle's staging in `folder`."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(".parallax-" in name for name in _hidden(folder)):
            time.sleep(0.1)  # a few files into the bundle
            return
        assert proc.poll() is None, f"the engine ended before writing: {proc.communicate()}"
        time.sleep(0.002)
    raise AssertionError("the engine never began writing its bundle")


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# Kills while writing.

def _align_caught_writing(big_windows: Path, windows: Path, folder: Path):
    """(out, snapshot of folder, process): an earlier bundle at folder/shot, and `align` replacing it, caught
    while it writes the new one."""
    out = make_bundle(folder / "shot", windows)
    before = snapshot(folder)
    proc = start_engine("align", big_windows, "--out", out, "--point-stride", "1")
    _wait_for_staging(folder, proc)
    return out, before, proc


@pytest.mark.slow
def test_sigkill_while_writing_keeps_the_old_bundle_and_the_next_run_cleans_up(big_windows, windows, tmp_path):
    out, before, proc = _align_caught_writing(big_windows, windows, tmp_path)
    proc.kill()
    proc.wait()
    staging = [name for name in _hidden(tmp_path) if ".parallax-" in name]
    assert staging, "the kill came too late to test anything"
    assert_unchanged(tmp_path, before, ignore=[tmp_path / name for name in staging])  # the old bundle intact
    assert run_main("align", windows, "--out", out, "--point-stride", "4").returncode == 0
    assert _hidden(tmp_path) == []
    assert read_bundle(out).frames


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["TERM", "INT", "HUP"])
def test_a_signal_while_writing_removes_the_staging_and_keeps_the_old_bundle(sig, big_windows, windows, tmp_path):
    """SIGTERM (a cancel, a farm's job kill), SIGINT (Ctrl-C), SIGHUP (the terminal closed)."""
    _, before, proc = _align_caught_writing(big_windows, windows, tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    assert_unchanged(tmp_path, before)


@pytest.mark.slow
def test_sigterm_to_serve_during_a_job_removes_its_staging(big_windows, windows, tmp_path):
    out = make_bundle(tmp_path / "shot", windows)
    before = snapshot(tmp_path)
    proc = start_engine("serve", stdin=subprocess.PIPE)
    proc.stdin.write(json.dumps({"type": "align", "id": "a", "windows": str(big_windows), "out": str(out),
                                 "point_stride": 1}) + "\n")
    proc.stdin.flush()
    for line in proc.stdout:
        event = json.loads(line)
        assert event["type"] in ("progress", "log"), event
        if event["type"] == "progress" and event["stage"] == "writing bundle" and event["fraction"] > 0.1:
            break
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr.read()
    assert_unchanged(tmp_path, before)


@pytest.mark.slow
def test_the_addon_stopping_the_engine_during_a_job_leaves_nothing_behind(big_windows, windows, tmp_path):
    from blender_addon.engine_process import EngineProcess

    out = make_bundle(tmp_path / "shot", windows)
    before = snapshot(tmp_path)
    engine = EngineProcess(sys.executable, ROOT)
    engine.start()
    engine.send({"type": "align", "id": "a", "windows": str(big_windows), "out": str(out), "point_stride": 1})
    while True:
        event = engine.wait_event(120)
        assert event is not None and event["type"] in ("progress", "log"), event
        if event["type"] == "progress" and event["stage"] == "writing bundle":
            break
    _wait_for_staging(tmp_path, engine._proc)
    engine.stop(timeout=0.0)  # shutdown, then at once SIGTERM: the engine's own cleanup must do it
    assert not engine.alive()
    assert_unchanged(tmp_path, before)


def test_the_addon_gives_the_engine_time_to_clean_up_after_sigterm(tmp_path):
    """EngineProcess.stop: SIGTERM, then TERMINATE_GRACE_S before SIGKILL. A stand-in engine that ignores
    the shutdown request and needs 1 s after SIGTERM must be allowed to finish its cleanup."""
    from blender_addon.engine_process import TERMINATE_GRACE_S, EngineProcess

    assert TERMINATE_GRACE_S >= 3
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "__main__.py").write_text(
        "import signal, sys, time\n"
        "def term(*_):\n"
        "    time.sleep(1.0)\n"
        f"    open({str(tmp_path / 'cleaned')!r}, 'w').close()\n"
        "    sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, term)\n"
        "print('{\"type\": \"pong\", \"id\": \"\"}', flush=True)\n"
        "while True:\n"
        "    time.sleep(0.1)\n")
    engine = EngineProcess(sys.executable, tmp_path)
    engine.start()
    assert engine.wait_event(30)["type"] == "pong"  # running, with its handler installed
    engine.stop(timeout=0.2)
    assert (tmp_path / "cleaned").exists(), "SIGKILL came before the engine could clean up"
    assert engine.wait_event(5)["returncode"] == 143


# Leftovers of killed runs.

def _staging(folder: Path, target: str, host: str, pid: int, kind: str = "dir") -> Path:
    path = folder / f".{target}.parallax-{host}-{pid}-abc123"
    if kind == "dir":
        path.mkdir()
        (path / "scene.json").write_text("{}")
    else:
        path.write_bytes(b"partial")
    return path


def test_stale_staging_of_a_dead_process_is_removed_by_the_next_run(windows, tmp_path):
    stale = _staging(tmp_path, "shot", HOST, _dead_pid())
    stale_file = _staging(tmp_path, "other.ply", HOST, _dead_pid(), kind="file")
    assert run_main("align", windows, "--out", tmp_path / "shot").returncode == 0
    assert not stale.exists() and not stale_file.exists()
    assert _hidden(tmp_path) == []


@pytest.mark.parametrize("who", ["running", "other-host", "not-parallax", "old-style"])
def test_staging_that_may_not_be_stale_is_kept(who, windows, tmp_path):
    name = {"running": f".shot.parallax-{HOST}-{os.getppid()}-abc",
            "other-host": f".shot.parallax-{HOST}x-{_dead_pid()}-abc",
            "not-parallax": ".shot.backup",
            "old-style": ".shot.k2j4h1xz"}[who]
    (tmp_path / name).mkdir()
    (tmp_path / name / "work.txt").write_text("keep")
    before = snapshot(tmp_path)
    assert run_main("align", windows, "--out", tmp_path / "shot").returncode == 0
    assert_unchanged(tmp_path, before, ignore=[tmp_path / "shot"])


@pytest.mark.parametrize("old_name", [".shot.parallax-old", ".shot.old"])
def test_an_old_bundle_whose_replacement_never_arrived_is_put_back(old_name, windows, good_bundle, tmp_path):
    """A crash between the two renames: only the old bundle exists, hidden. A failed next run (bad input)
    still puts it back, byte-identical."""
    old = copy_tree(good_bundle, tmp_path / old_name)
    expected = snapshot(old)
    (tmp_path / "bad").mkdir()
    assert_clear_error(run_main("align", tmp_path / "bad", "--out", tmp_path / "shot"), "windows.json")
    assert snapshot(tmp_path / "shot") == expected
    assert _hidden(tmp_path) == []


def test_a_leftover_old_bundle_is_removed_when_the_new_one_arrived(windows, good_bundle, tmp_path):
    copy_tree(good_bundle, tmp_path / ".shot.parallax-old")
    copy_tree(good_bundle, tmp_path / "shot")
    assert run_main("align", windows, "--out", tmp_path / "shot").returncode == 0
    assert _hidden(tmp_path) == []


@pytest.mark.parametrize("name", [".shot.parallax-old", ".shot.old"])
def test_an_old_folder_parallax_did_not_write_is_never_moved(name, windows, good_bundle, tmp_path):
    old = copy_tree(good_bundle, tmp_path / name)
    (old / "notes.txt").write_text("mine")
    copy_tree(good_bundle, tmp_path / "shot")
    before = snapshot(tmp_path)
    result = run_main("align", windows, "--out", tmp_path / "shot")
    if name == ".shot.parallax-old":  # it blocks the replacement: a clear refusal, nothing touched
        assert_clear_error(result, "is in the way", "move or rename")
        assert_unchanged(tmp_path, before)
    else:
        assert result.returncode == 0, result.stderr
        assert_unchanged(tmp_path, before, ignore=[tmp_path / "shot"])


def test_a_legacy_old_bundle_beside_a_bundle_is_left_alone(windows, good_bundle, tmp_path):
    """`.NAME.old` of earlier versions is put back when NAME is missing, but never deleted: it may be a
    backup an artist made by hand."""
    copy_tree(good_bundle, tmp_path / ".shot.old")
    copy_tree(good_bundle, tmp_path / "shot")
    before = snapshot(tmp_path / ".shot.old")
    assert run_main("align", windows, "--out", tmp_path / "shot").returncode == 0
    assert snapshot(tmp_path / ".shot.old") == before


def test_staged_file_is_complete_or_absent(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic.staged_file(target) as f:
            f.write(b"new, partial")
            raise RuntimeError("cut short")
    assert target.read_bytes() == b"old" and _hidden(tmp_path) == []
    with atomic.staged_file(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new" and _hidden(tmp_path) == []


def test_a_failure_inside_staged_dir_leaves_the_old_folder(good_bundle, tmp_path):
    out = copy_tree(good_bundle, tmp_path / "shot")
    before = snapshot(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with atomic.staged_dir(out) as tmp:
            (tmp / "scene.json").write_text("{}")
            raise KeyboardInterrupt
    assert_unchanged(tmp_path, before)


# A full disk.

def test_a_full_disk_while_writing_a_bundle_is_a_clear_error(windows, good_bundle, small_disk):
    disk = small_disk(8 << 20)
    out = copy_tree(good_bundle, disk / "shot")
    fill(disk, leave=64 << 10)
    before = snapshot(disk)
    assert_clear_error(run_main("align", windows, "--out", out), "disk", "full", "free disk space")
    assert_unchanged(disk, before)


def test_a_full_disk_writing_a_new_bundle_leaves_nothing(windows, small_disk):
    disk = small_disk(4 << 20)
    fill(disk, leave=32 << 10)
    before = snapshot(disk)
    assert_clear_error(run_main("align", windows, "--out", disk / "new"), "full")
    assert_unchanged(disk, before)


def test_spill_files_are_reserved_before_the_model_writes_them(small_disk):
    """posix_fallocate: a disk without room for the maps is a clear error when they are made, instead of
    SIGBUS when the model writes into them."""
    disk = small_disk(4 << 20)
    size = maps_bytes(2, 16, (64, 64))
    assert size > 4 << 20
    with pytest.raises(EngineError, match="could not reserve"):
        new_maps(2, 16, (64, 64), spill_dir=disk)
    assert list(disk.iterdir()) == []  # nameless files: nothing left


def test_spill_files_that_fit_are_usable(small_disk):
    disk = small_disk(16 << 20)
    maps = new_maps(1, 16, (32, 32), spill_dir=disk)
    maps["pointmap"][:] = 1.5
    assert float(maps["pointmap"].sum()) == 1.5 * maps["pointmap"].size
    assert list(disk.iterdir()) == []


def test_a_full_disk_in_a_subprocess_is_an_error_not_a_signal(small_disk):
    """The defect itself: without the reservation, writing into a mapped file on a full disk is SIGBUS."""
    disk = small_disk(4 << 20)
    code = ("from engine.windows.predictions import new_maps\n"
            f"maps = new_maps(2, 16, (64, 64), spill_dir={str(disk)!r})\n"
            "maps['pointmap'][:] = 1\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, (result.returncode, result.stderr)  # an exception, not killed by a signal
    assert "could not reserve" in result.stderr


# Memory.

@pytest.mark.parametrize("size", [(64000, 64000), (6400, 64000), (16384, 16384)])
def test_a_processing_size_beyond_the_memory_is_refused_with_the_figures(size, tiny_model_dir, clip, tmp_path):
    before = snapshot(tmp_path)
    result = run_main("reconstruct", clip, "--out", tmp_path / "out", "--model-dir", tiny_model_dir,
                      "--device", "cpu", "--size", *size)
    message = assert_clear_error(result, f"{size[0]}x{size[1]}", "GB", "smaller --size")
    assert "needs at least" in message and "has" in message
    assert_unchanged(tmp_path, before)


@pytest.mark.parametrize("model, directory", [("geo4d", "tiny_model_dir"), ("geometrycrafter", "tiny_gc_model_dir")])
def test_an_impossible_size_is_refused_before_the_weights_load(model, directory, clip, tmp_path, request):
    """The memory check reads the model directory's configuration and its files' headers, not the weights: with a
    weight file damaged in place (its size kept, so only the load's checksum notices), an impossible size is
    still refused for its memory, and a possible one reaches the load, which names the damaged file."""
    models = copy_tree(request.getfixturevalue(directory), tmp_path / "models")
    weights = sorted(models.glob("*.safetensors"))[0]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # the last tensor's data, after the header
    weights.write_bytes(bytes(data))
    base = ("reconstruct", clip, "--out", tmp_path / "out", "--model", model, "--model-dir", models,
            "--device", "cpu", "--frames", "0:8")
    message = assert_clear_error(run_main(*base, "--size", 64000, 64000), "64000x64000", "needs at least")
    assert "corrupt" not in message
    assert_clear_error(run_main(*base, "--size", 64, 64), "corrupt", weights.name)
    assert not (tmp_path / "out").exists()


def test_the_geometrycrafter_memory_bound_counts_the_weights_it_will_load(tiny_gc_model_dir):
    """Read before loading, the bound's weights are the loaded networks' bytes: on the CPU all five (the UNet and
    CLIP in the run precision, the VAEs and MoGe in float32), on a GPU those of the conditioning stage."""
    torch_or_skip()
    from engine.models.geometrycrafter import memory_floor
    from engine.models.geometrycrafter.model import load_geometrycrafter

    network = load_geometrycrafter(tiny_gc_model_dir, "cpu", "bfloat16", "diff").network
    loaded = {name: sum(t.numel() * t.element_size() for t in getattr(network, name).state_dict().values())
              for name in ("unet", "vae", "point_map_vae", "image_encoder", "moge")}
    assert {t.dtype for t in network.unet.state_dict().values()} == {__import__("torch").bfloat16}
    size = (64, 128)
    on_cpu, _ = memory_floor(tiny_gc_model_dir, size, "bfloat16", "cpu", "torch")
    on_gpu, what = memory_floor(tiny_gc_model_dir, size, "bfloat16", "cuda:0", "torch")
    assert on_cpu - on_gpu == loaded["unet"] + loaded["moge"]
    # Above the weights: the VAE's first layer in and out (2 x 8 frames x its width x H x W, float32 with
    # force_upcast) and one window's frames (8 in the tiny directory) as float32.
    width = json.loads((tiny_gc_model_dir / "config.json").read_text())["config"]["vae"]["block_out_channels"][0]
    assert on_cpu - sum(loaded.values()) == 2 * 8 * width * 64 * 128 * 4 + 8 * 3 * 64 * 128 * 4
    assert "GB of weights" in what
    # --runtime onnx (float16 on a GPU, 2 bytes an element as bfloat16): ONNX Runtime keeps the UNet's graph on
    # the GPU through every stage, on top of the offloaded conditioning networks; on the CPU it replaces the
    # torch UNet, and the bound is the same.
    onnx_gpu = memory_floor(tiny_gc_model_dir, size, "float16", "cuda:0", "onnx")[0]
    assert onnx_gpu - memory_floor(tiny_gc_model_dir, size, "float16", "cuda:0", "torch")[0] == loaded["unet"]
    assert memory_floor(tiny_gc_model_dir, size, "bfloat16", "cpu", "onnx")[0] == on_cpu


def test_the_geo4d_memory_bound_counts_the_weights_it_keeps(tiny_model_dir):
    """Read before loading, the bound's weights are the loaded model's bytes in the run precision: its networks
    less the parts inference never runs (weights.NOT_RUN), and the context."""
    torch_or_skip()
    from engine.models.geo4d import memory_floor
    from engine.models.geo4d.weights import load_geo4d

    import torch

    loaded = load_geo4d(tiny_model_dir, "cpu", torch.bfloat16)
    kept = sum(t.numel() * t.element_size() for m in (loaded.unet, loaded.vae, loaded.pointmap_vae)
               for t in m.state_dict().values()) + loaded.context.numel() * loaded.context.element_size()
    assert {t.dtype for t in loaded.unet.state_dict().values()} == {torch.bfloat16}
    needed, what = memory_floor(tiny_model_dir, (64, 128), "bfloat16", "cpu", "torch")
    assert memory_floor(tiny_model_dir, (64, 128), "bfloat16", "cpu", "onnx")[0] == needed
    # Above the weights: the VAE's first layer in and out (2 x 8 frames x its width x H x W in bfloat16) and one
    # window's 16 frames as uint8 RGB.
    width = loaded.config["model"]["params"]["first_stage_config"]["params"]["ddconfig"]["ch"]
    assert needed - kept == 2 * 8 * width * 64 * 128 * 2 + 16 * 64 * 128 * 3
    assert "GB of weights" in what


def test_the_memory_bound_never_refuses_the_training_size():
    torch_or_skip()  # the model's memory bound is computed with torch
    from engine.models.geo4d.config import load_config
    from engine.models.geo4d.model import memory_floor
    from engine.pipeline.reconstruct import _memory_of

    needed, _ = memory_floor(load_config(), (320, 512), "float32", "cpu")  # the official model at its training size
    assert 0 < needed < _memory_of("cpu")[0]


# Runs racing for one output.

@pytest.mark.slow
def test_runs_writing_the_same_bundle_at_once_leave_one_complete_bundle(windows, tmp_path):
    out = tmp_path / "shot"
    procs = [start_engine("align", windows, "--out", out, "--point-stride", str(k)) for k in (1, 2, 3, 4)]
    results = [(p.wait(timeout=120), p.communicate()) for p in procs]
    for code, (_, err) in results:
        assert "Traceback" not in err, err
        assert code == 0 or ("error:" in err and "fix:" in err), err
    assert any(code == 0 for code, _ in results)
    bundle = read_bundle(out)
    assert all(f.points_path.is_file() and f.depth_path.is_file() for f in bundle.frames)
    assert _hidden(tmp_path) == []


@pytest.mark.slow
def test_a_full_disk_while_converting_keeps_the_earlier_model_directory(tiny_checkpoints, tiny_model_dir, small_disk):
    disk = small_disk(48 << 20)
    out = copy_tree(tiny_model_dir, disk / "geo4d")
    fill(disk, leave=1 << 20)
    before = snapshot(disk)
    result = run_main("convert", "geo4d", "--model-ckpt", tiny_checkpoints.model, "--vae-ckpt", tiny_checkpoints.vae,
                      "--config", tiny_checkpoints.config, "--dtype", "fp32", "--out", out)
    assert_clear_error(result, "full", "free disk space")
    assert_unchanged(disk, before)


# Durability: what is renamed into place is on the disk.

@pytest.mark.slow
def test_every_file_is_flushed_before_the_bundle_is_renamed_into_place(windows, tmp_path):
    """Seen from the system calls (strace -y names each descriptor's file): an fsync of every file and folder
    of the staging comes before the rename that publishes it, and an fsync of the parent folder after."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed here")
    out = tmp_path / "shot"
    log = tmp_path / "strace.log"
    cmd = ["strace", "-f", "-y", "-qq", "-e", "trace=fsync,rename,renameat,renameat2", "-o", str(log),
           sys.executable, "-m", "engine", "align", str(windows), "--out", str(out), "--point-stride", "4"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode != 0 and "ptrace" in result.stderr:
        pytest.skip(f"strace may not trace here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    publish = next(i for i, c in enumerate(calls) if "rename" in c and f'"{out}"' in c)
    staging = calls[publish].split('"')[1]
    synced = {c.split("<", 1)[1].split(">", 1)[0] for c in calls[:publish] if "fsync(" in c and "<" in c}
    files = {os.path.join(staging, p.relative_to(out)) for p in out.rglob("*")} | {staging}
    assert files <= synced, f"not flushed before the rename: {sorted(files - synced)[:5]}"
    assert any("fsync(" in c and f"<{tmp_path}>" in c for c in calls[publish:]), "the folder's rename was not flushed"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["TERM", "HUP", "INT"])
def test_an_idle_serve_exits_cleanly_on_a_signal(sig):
    proc = start_engine("serve", stdin=subprocess.PIPE)
    proc.stdin.write('{"type": "ping", "id": "p"}\n')
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline())["type"] == "pong"  # serving, its handlers installed
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
