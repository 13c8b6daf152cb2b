"""The weights from the add-on's preferences, in headless Blender with the real engine process: Download and
Convert refused while online access is off or the licences are not accepted (nothing asked of the server, nothing
written), then downloading from a real local server that answers as the Hugging Face hub does, converting and
verifying; the manual route (Convert Downloaded Files) from the hub's layout; a cancel in the middle of a download
that leaves the model folder as it was and keeps the files already downloaded; the state the preferences show
after each."""

from __future__ import annotations

import json

from tests.needs import torch_or_skip

torch_or_skip()  # the engine converts and verifies with torch

from safetensors.torch import load_file  # noqa: E402

from engine.models.geometrycrafter.model_dir import LAYOUT, NETWORKS  # noqa: E402
from tests.addon_session import INSTALL, run_bpy  # noqa: E402
from tests.fixture_paths import requires_geometrycrafter_fixtures  # noqa: E402
from tests.tiny_hub import make_hub, serve_hub  # noqa: E402

pytestmark = requires_geometrycrafter_fixtures
UNET = "TencentARC/GeometryCrafter/unet_diff/diffusion_pytorch_model.safetensors"

# After INSTALL: the engine's environment (argv[2], JSON: a home of its own for the download folder, the local hub)
# and the GeometryCrafter folder (argv[3]); op() runs a weights operator and says what the preferences show.
WEIGHTS = INSTALL + """
import hashlib, time
os.environ.update(json.loads(sys.argv[2]))
prefs.geometrycrafter_dir = sys.argv[3]
weights = importlib.import_module(MOD + ".weights")
MODEL = "geometrycrafter"

def op(name, **kwargs):
    try:
        status = sorted(getattr(bpy.ops.parallax, name)(model=MODEL, **kwargs))
    except RuntimeError:  # an operator that reports an error raises in background Blender
        status = ["RAISED"]
    return {"status": status, "message": weights._messages.get(MODEL, ""), "lines": weights.state_lines(MODEL)}

def files(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir())}

from pathlib import Path
"""


def engine_env(tmp_path, endpoint: str) -> str:
    return json.dumps({"HOME": str(tmp_path / "home"), "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf-home"),
                       "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": ""})


def test_download_is_refused_offline_and_before_the_licences_then_downloads_converts_and_verifies(addon_zip,
                                                                                                   tmp_path,
                                                                                                   tiny_model_dir):
    model = tmp_path / "models" / "geometrycrafter"
    script = WEIGHTS + f"""
prefs.model_dir = {str(tiny_model_dir)!r}
result["geo4d"] = [sorted(bpy.ops.parallax.check_weights(model="geo4d")), weights.state_lines("geo4d")]
""" + """
bpy.context.preferences.system.use_online_access = False
result["offline"] = op("download_weights")
bpy.context.preferences.system.use_online_access = True
result["not_accepted"] = op("download_weights")
result["before_check"] = weights.state_lines(MODEL)
result["check"] = op("check_weights")
prefs.geometrycrafter_licences_accepted = True
result["download"] = op("download_weights")
result["state"] = weights.state(MODEL)
report()
"""
    with serve_hub(tmp_path / "hub") as (handler, endpoint, states):
        result = run_bpy(script, [addon_zip, engine_env(tmp_path, endpoint), model], tmp_path / "profile", timeout=600)
        requests = list(handler.requests)
    downloads = tmp_path / "home" / ".cache" / "parallax" / "downloads" / "geometrycrafter"

    assert result["geo4d"] == [["FINISHED"], [["CHECKMARK", f"Found and verified: {tiny_model_dir}"]]]
    assert result["offline"]["status"] == ["RAISED"]
    assert "online access is disabled" in result["offline"]["message"]
    assert "Preferences > System > Network" in result["offline"]["message"]
    assert result["not_accepted"]["status"] == ["RAISED"]
    assert "licences of the GeometryCrafter weights are not accepted" in result["not_accepted"]["message"]
    assert result["before_check"] == [["QUESTION", "Weights not checked yet: press Check"]]
    assert result["check"]["status"] == ["FINISHED"]
    assert result["check"]["lines"][0] == ["ERROR", f"no GeometryCrafter weights in {model} yet"]

    assert result["download"]["status"] == ["FINISHED"], result["download"]
    assert result["download"]["lines"] == [["CHECKMARK", f"Found and verified: {model}"]]
    assert result["download"]["message"] == f"GeometryCrafter weights found and verified in {model}"
    assert result["state"]["state"] == "verified" and "research" in result["state"]["licences"]
    # Only the download asked the server for anything; the refusals wrote nothing before it.
    assert {name for _, name, _ in requests} >= {UNET} and all(method == "GET" for method, _, _ in requests)
    LAYOUT.verify(model)
    stored = load_file(model / "unet_diff.safetensors")
    assert stored.keys() == states["unet_diff"].keys()
    assert all((stored[k].float() == v.half().float()).all() for k, v in states["unet_diff"].items())
    assert (downloads / UNET).is_file()


def test_manual_route_converts_the_hub_layout_and_a_cancelled_download_leaves_the_model_folder(addon_zip,
                                                                                                 tmp_path):
    make_hub(tmp_path / "downloaded")
    (tmp_path / "empty").mkdir()
    model = tmp_path / "models" / "geometrycrafter"
    script = WEIGHTS + """
# Offline (background Blender's default): the manual route needs no network.
result["convert_empty"] = op("convert_weights", directory=sys.argv[4])
result["model_after_refusal"] = Path(sys.argv[3]).exists()
result["convert"] = op("convert_weights", directory=sys.argv[5])
before = files(sys.argv[3])

bpy.context.preferences.system.use_online_access = True
prefs.geometrycrafter_licences_accepted = True
job = weights.start(bpy.context, MODEL, "download")
while not job.poll() and not (job.stage == "downloading " + sys.argv[6] and job.fraction > 0.1):
    time.sleep(0.02)
result["cancelled_at"] = [job.stage, job.fraction]
job.cancel()
while not job.poll():
    time.sleep(0.05)
result["cancel"] = list(weights.finish(job, MODEL, "download"))
result["cancel"][0] = sorted(result["cancel"][0])
result["unchanged"] = files(sys.argv[3]) == before
result["beside_model"] = sorted(p.name for p in Path(sys.argv[3]).parent.iterdir())
result["lines"] = weights.state_lines(MODEL)
report()
"""
    with serve_hub(tmp_path / "hub") as (handler, endpoint, _):
        # Slow and large: huggingface_hub reports (and writes) 10 MB at a time, so the cancel lands between blocks.
        handler.slow.add(UNET)
        (tmp_path / "hub" / UNET).write_bytes(bytes(range(256)) * (24 << 12))
        result = run_bpy(script, [addon_zip, engine_env(tmp_path, endpoint), model, tmp_path / "empty",
                                  tmp_path / "downloaded", UNET], tmp_path / "profile", timeout=600)

    assert result["convert_empty"]["status"] == ["RAISED"] and not result["model_after_refusal"]
    assert "Converting GeometryCrafter failed" in result["convert_empty"]["message"]
    assert "is missing" in result["convert_empty"]["message"]
    assert result["convert"]["status"] == ["FINISHED"], result["convert"]
    assert result["convert"]["lines"] == [["CHECKMARK", f"Found and verified: {model}"]]

    stage, fraction = result["cancelled_at"]
    assert stage == f"downloading {UNET}" and 0.1 < fraction < 1, (stage, fraction)
    assert result["cancel"][0] == ["WARNING"] and "cancelled; the model folder is as it was" in result["cancel"][1]
    assert result["unchanged"] and result["beside_model"] == ["geometrycrafter"]  # no staging left beside it
    assert result["lines"] == [["CHECKMARK", f"Found and verified: {model}"]]
    LAYOUT.verify(model)
    assert {f"{name}.safetensors" for name in NETWORKS} <= {p.name for p in model.iterdir()}
    downloads = tmp_path / "home" / ".cache" / "parallax" / "downloads" / "geometrycrafter"
    # The files finished before the cancel stay for the next download; the cancelled one never arrived whole
    # (huggingface_hub 2.4 removes its unfinished file and starts it afresh next time).
    assert (downloads / "TencentARC/GeometryCrafter/unet_diff/config.json").is_file()
    assert not (downloads / UNET).exists()
