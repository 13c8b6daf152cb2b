"""The Reconstruct operator in a fresh Blender with the installed extension: failures leave the scene as it was
and say why; the engine environment builder makes a working venv."""

import re
import sys

from tests.addon_session import SCENE, run_bpy


def run_failure(addon_zip, clip, tmp_path, setup: str) -> dict:
    script = SCENE + setup + """
result.update(reconstruct())
result["unchanged"] = snapshot() == before
result["running"] = bpy.context.window_manager.parallax_running
report()
"""
    return run_bpy(script, [addon_zip, clip], tmp_path / "profile")


def test_missing_clip_file_is_reported_and_nothing_changes(addon_zip, clip, tmp_path):
    result = run_failure(addon_zip, clip, tmp_path, "os.remove(sys.argv[2])\n")
    assert result["status"] == ["RAISED"] and "does not exist" in result["message"]
    assert "relink the clip" in result["message"]
    assert result["unchanged"] and not result["running"]


def test_empty_frame_range_is_reported(addon_zip, clip, tmp_path):
    setup = ("s = bpy.context.scene.parallax; s.use_clip_range = False\n"
             "s.frame_start = 500; s.frame_end = 600\n")
    result = run_failure(addon_zip, clip, tmp_path, setup)
    assert "selects no frame" in result["message"] and result["unchanged"]


def test_killed_engine_is_reported_with_its_exit_code(addon_zip, clip, tmp_path):
    # An "interpreter" that is killed (SIGKILL) as soon as it starts: the engine dies without a word.
    dying = tmp_path / "dying-python"
    dying.write_text("#!/bin/sh\nkill -KILL $$\n")
    dying.chmod(0o755)
    result = run_failure(addon_zip, clip, tmp_path, f"prefs.python_path = {str(dying)!r}\n")
    assert result["status"] == ["RAISED"]
    assert "engine process stopped unexpectedly (exit code -9)" in result["message"]
    assert result["unchanged"] and not result["running"]


def test_engine_python_without_requirements_is_named(addon_zip, clip, tmp_path):
    # A fresh environment made by the add-on's own builder, with no packages installed in it.
    setup = f"""
builder_mod = importlib.import_module(MOD + ".engine_env")
builder = builder_mod.EnvBuilder({sys._base_executable!r}, {str(tmp_path / 'env')!r}, []).start()
builder.join(300)
result["builder"] = [builder.state, builder.stage, builder.fraction]
prefs.python_path = str(builder_mod.env_python(builder.env_dir))
"""
    result = run_failure(addon_zip, clip, tmp_path, setup)
    assert result["builder"] == ["done", "ready", 1.0]
    missing = re.search(r"lacks the package '(\w+)'", result["message"])
    assert missing and missing[1] in {"numpy", "cv2", "scipy", "torch"}, result["message"]
    assert "create the engine environment again" in result["message"]
    assert result["unchanged"]


def test_cancel_ends_an_engine_that_does_not_answer(addon_zip, clip, tmp_path):
    # An "interpreter" that never reads its requests nor answers: cancel must still end the job.
    silent = tmp_path / "silent-python"
    silent.write_text("#!/bin/sh\nexec sleep 600\n")
    silent.chmod(0o755)
    script = SCENE + f"""
import time
prefs.python_path = {str(silent)!r}
ep = importlib.import_module(MOD + ".engine_process")
rc = importlib.import_module(MOD + ".reconstruct")
ep.CANCEL_GRACE_S = 0.5
job = rc.start(bpy.context)
pid = job.engine.pid
time.sleep(0.5)
result["running_before_cancel"] = not job.poll()
job.cancel()
while not job.poll():
    time.sleep(0.05)
result["outcome"] = job.outcome
result["message"] = rc.finish(bpy.context, job)[1]
result["engine_alive"] = os.path.exists(f"/proc/{{pid}}")
result["unchanged"] = snapshot() == before
report()
"""
    result = run_bpy(script, [addon_zip, clip], tmp_path / "profile")
    assert result["running_before_cancel"] and result["outcome"] == "cancelled"
    assert "cancelled" in result["message"] and result["unchanged"]
    assert result["engine_alive"] is False


def test_presets_and_device_choice_reach_the_engine_options(addon_zip, clip, tmp_path):
    # A fixed 320x512 would stretch clips of another aspect; the engine fits the size when it gets null.
    script = SCENE + """
rc = importlib.import_module(MOD + ".reconstruct")
settings = bpy.context.scene.parallax
sent = {}
for preset in ("FAST", "STANDARD", "FINE", "CUSTOM"):
    settings.preset = preset
    options = rc.reconstruct_options(bpy.context, clip)
    sent[preset] = [options["stride"], options["steps"], options["size"]]
settings.stride, settings.steps, settings.use_custom_size, settings.size_h, settings.size_w = 3, 7, True, 256, 448
options = rc.reconstruct_options(bpy.context, clip)
sent["CUSTOM size"] = [options["stride"], options["steps"], options["size"]]
result["sent"] = sent
devices = []
for device, gpu, precision in (("auto", 3, "auto"), ("cuda", 0, "auto"), ("cuda", 1, "bf16"), ("mps", 1, "fp16"),
                               ("cpu", 0, "fp32")):
    prefs.device, prefs.gpu_index, prefs.precision = device, gpu, precision
    options = rc.reconstruct_options(bpy.context, clip)
    devices.append([options["device"], options["precision"]])
result["devices"] = devices
report()
"""
    result = run_bpy(script, [addon_zip, clip], tmp_path / "profile")
    # Device and precision as the engine reads them (null: its automatic choice).
    assert result["devices"] == [[None, None], ["cuda:0", None], ["cuda:1", "bf16"], ["mps", "fp16"], ["cpu", "fp32"]]
    sent = result["sent"]
    assert sent == {"FAST": [8, 5, None], "STANDARD": [4, 5, None], "FINE": [2, 5, None], "CUSTOM": [4, 5, None],
                    "CUSTOM size": [3, 7, [256, 448]]}


def test_advanced_settings_reach_the_engine_options(addon_zip, clip, tmp_path):
    """Runtime and window batch (preferences), seed, kept windows and smoothness (the Advanced panel) reach the
    request; each setting's description, default and range are its engine option's (engine/options.py)."""
    script = SCENE + """
rc = importlib.import_module(MOD + ".reconstruct")
settings = bpy.context.scene.parallax
result["defaults"] = rc.reconstruct_options(bpy.context, clip)
prefs.runtime, prefs.window_batch = "onnx", 3
settings.seed, settings.window_storage, settings.smoothness = 7, "none", 2.5
sent = rc.reconstruct_options(bpy.context, clip)
result["sent"] = [sent["runtime"], sent["window_batch"], sent["seed"], sent["window_storage"],
                  sent["align"]["smoothness"]]
rna = {name: owner.bl_rna.properties[name] for owner, names in ((prefs, ("runtime", "window_batch")),
       (settings, ("seed", "window_storage", "smoothness"))) for name in names}
result["rna"] = {name: [p.description, [item.identifier for item in p.enum_items] if p.type == "ENUM"
                        else [p.hard_min, p.hard_max]] for name, p in rna.items()}
report()
"""
    result = run_bpy(script, [addon_zip, clip], tmp_path / "profile")
    from engine.options import AlignOptions, ReconstructOptions

    defaults = result["defaults"]
    assert [defaults["runtime"], defaults["window_batch"], defaults["seed"], defaults["window_storage"],
            defaults["align"]["smoothness"]] == ["torch", 1, 123, "fp16", 30.0]
    assert result["sent"] == ["onnx", 3, 7, "none", 2.5]
    rna = result["rna"]
    for cls, name in ((ReconstructOptions, "runtime"), (ReconstructOptions, "window_batch"),
                      (ReconstructOptions, "seed"), (ReconstructOptions, "window_storage"),
                      (AlignOptions, "smoothness")):
        help_text = cls.__dataclass_fields__[name].metadata["help"]
        assert rna[name][0] == help_text[0].upper() + help_text[1:], name
    assert rna["runtime"][1] == ["torch", "onnx"] and rna["window_storage"][1] == ["fp16", "fp32", "none"]
    assert rna["window_batch"][1] == [1, 4096] and rna["seed"][1] == [0, 2**31 - 1]
    assert rna["smoothness"][1] == [0.0, 1e6]
