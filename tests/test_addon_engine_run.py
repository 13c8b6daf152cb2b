"""The Reconstruct operator end to end in a fresh Blender with the installed extension and the tiny
random-weight Geo4D model: Movie Clip -> engine process -> bundle -> import; cancel, a killed engine,
a missing model and an unreadable clip leave the scene as it was and say why."""

from tests.addon_session import SCENE, run_bpy

# The tiny model (UNet stride 32) at 32x64, 2 steps, on one window (the first 16 frames) keeps a run short.
TINY = SCENE + """
import time, signal
prefs.model_dir = sys.argv[3]
prefs.device = "cpu"
settings = bpy.context.scene.parallax
settings.preset = "CUSTOM"
settings.stride, settings.steps, settings.use_custom_size, settings.size_h, settings.size_w = 4, 2, True, 32, 64
settings.use_clip_range, settings.frame_start, settings.frame_end = False, 1, 16
rc = importlib.import_module(MOD + ".reconstruct")
ep = importlib.import_module(MOD + ".engine_process")

def started_job():
    job = rc.start(bpy.context)
    while not job.done and job.stage == "starting engine":
        job.poll()
        time.sleep(0.01)
    result["stage_seen"] = job.stage
    return job

def wait(job):
    while not job.poll():
        time.sleep(0.05)
    level, message = rc.finish(bpy.context, job)
    return {"outcome": job.outcome, "message": message}

def leftovers():
    folder = rc.bundle_dir(clip).parent
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
"""


def test_operator_reconstructs_the_active_clip_and_reimport_replaces(addon_zip, clip, tmp_path, tiny_model_dir):
    script = TINY + """
settings.confidence_threshold, settings.accumulate = 0.25, True
import json
def per_frame_focal():
    scene_json = json.loads((rc.bundle_dir(clip) / "scene.json").read_text())
    return scene_json["metadata"]["alignment"]["options"]["per_frame_focal"]
first = reconstruct()
result["per_frame_focal"] = [per_frame_focal()]
result["engine_log"] = bpy.context.window_manager.parallax_log.splitlines()
quality = bpy.context.scene.camera["parallax_quality"]
result["quality"] = {"mean_px": quality["mean_px"], "grade": quality["grade"], "worst": list(quality["worst"]),
                     "worst_px": list(quality["worst_px"]), "clip_start": clip.frame_start}
points = [o for o in bpy.data.objects if "Parallax Points" in o.modifiers]
modifier = points[0].modifiers["Parallax Points"]
points_module = importlib.import_module(MOD + ".importer.points")
result["points_inputs"] = [len(points)] + [points_module.modifier_input(modifier, name)
                                           for name in ("Confidence Threshold", "Accumulate")]
settings.confidence_threshold, settings.accumulate = 0.0, False
settings.zoom_shot = True
pid = ep.current_engine().pid
after_first = snapshot()
scene = bpy.context.scene
scene.frame_set(scene.frame_start)
start_matrix = [list(r) for r in scene.camera.matrix_world]
scene.frame_set(scene.frame_end)
end_matrix = [list(r) for r in scene.camera.matrix_world]
second = reconstruct()
result["per_frame_focal"].append(per_frame_focal())
result.update(first=first, second=second, before=before, after_first=after_first, after_second=snapshot(),
              same_engine=ep.current_engine().pid == pid, frames=[scene.frame_start, scene.frame_end],
              camera_moves=start_matrix != end_matrix, bundle=str(rc.bundle_dir(clip)),
              active_clip=scene.active_clip.name, leftovers=leftovers())
# "Stop Engine / Free GPU Memory": the process ends; with no engine the button has nothing to do.
pid = ep.current_engine().pid
result["stop"] = sorted(bpy.ops.parallax.stop_engine())
result["stopped"] = [ep.current_engine() is None, os.path.exists(f"/proc/{pid}"), bpy.ops.parallax.stop_engine.poll()]
report()
"""
    result = run_bpy(script, [addon_zip, clip, tiny_model_dir], tmp_path / "profile")
    assert result["first"]["status"] == ["FINISHED"], result["first"]
    assert result["stop"] == ["FINISHED"] and result["stopped"] == [True, False, False]
    assert "Reconstructed into" in result["first"]["message"]
    # What the engine said about the job, as the panel lists it: where the model ran, and that the CPU is slow.
    assert result["engine_log"][:2] == ["info\tGeo4D on cpu, fp32, torch runtime",
                                        "warning\tGeo4D is running on the CPU: expect minutes per frame; "
                                        "use a CUDA GPU for whole shots"]
    # The engine's solve error is the panel's (plate pixels), at the frame the panel's first button jumps to (the
    # clip at its default Start Frame 1: its frames counted from 1 are the scene's).
    q = result["quality"]
    solve = [line for line in result["engine_log"] if line.startswith("info\tsolve error")]
    assert q["clip_start"] == 1 and len(solve) == 1
    assert solve[0].startswith(f"info\tsolve error {q['mean_px']:.2f} px average in plate pixels ({q['grade']}), "
                               f"worst {q['worst_px'][0]:.2f} px at frame {q['worst'][0]} of the clip "
                               "(counting from 1)")
    before, first = result["before"], result["after_first"]
    assert len(first["collections"]) == len(before["collections"]) + 1
    assert len(first["cameras"]) == len(before["cameras"]) + 1 and first["scene"][5] is not None
    assert first["meshes"] != before["meshes"] and first["images"] != before["images"]
    assert result["frames"][1] - result["frames"][0] + 1 == 16  # the 16 reconstructed frames
    assert result["camera_moves"]
    # The panel's import settings reach the points' modifier.
    assert result["points_inputs"] == [1, 0.25, True]
    # A second run reuses the running engine and replaces the first import instead of adding to it.
    assert result["second"]["status"] == ["FINISHED"] and result["same_engine"]
    assert result["after_second"] == first
    # Zoom Shot reaches the alignment: the second bundle has one focal length per frame.
    assert result["per_frame_focal"] == ["auto", "on"]
    assert result["leftovers"] == ["shot"]  # the bundle, no half-written temporary folders


def test_cancel_and_killed_engine_leave_the_scene_unchanged(addon_zip, clip, tmp_path, tiny_model_dir):
    script = TINY + """
job = started_job()
job.cancel()
result["cancel"] = wait(job)
result["cancel_unchanged"] = snapshot() == before
job = started_job()
os.kill(job.engine.pid, signal.SIGKILL)
result["kill"] = wait(job)
result["kill_unchanged"] = snapshot() == before
result["leftovers"] = leftovers()
result["after_kill"] = reconstruct()  # a new engine starts and the next run works
report()
"""
    result = run_bpy(script, [addon_zip, clip, tiny_model_dir], tmp_path / "profile")
    assert result["cancel"]["outcome"] == "cancelled" and "scene is unchanged" in result["cancel"]["message"]
    assert result["cancel_unchanged"]
    assert result["kill"]["outcome"] == "error"
    assert "engine process stopped unexpectedly (exit code -9)" in result["kill"]["message"]
    assert result["kill_unchanged"] and result["leftovers"] == []
    assert result["after_kill"]["status"] == ["FINISHED"]


def test_missing_model_and_unreadable_clip_are_reported(addon_zip, clip, tmp_path, tiny_model_dir):
    script = TINY + f"""
prefs.model_dir = {str(tmp_path / 'no-model')!r}
result["no_model"] = reconstruct()
result["no_model_unchanged"] = snapshot() == before
prefs.model_dir = sys.argv[3]
settings.use_clip_range = True
with open(sys.argv[2], "wb") as f:
    f.write(b"this is not a video")
result["bad_clip"] = reconstruct()
result["bad_clip_unchanged"] = snapshot() == before
result["leftovers"] = leftovers()
report()
"""
    result = run_bpy(script, [addon_zip, clip, tiny_model_dir], tmp_path / "profile")
    assert result["no_model"]["status"] == ["RAISED"] and "no-model" in result["no_model"]["message"]
    assert result["no_model_unchanged"]
    assert result["bad_clip"]["status"] == ["RAISED"] and "shot.mp4" in result["bad_clip"]["message"]
    assert result["bad_clip_unchanged"] and result["leftovers"] == []
