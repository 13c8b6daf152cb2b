"""Reconstruct the active clip: ask the engine process for a bundle, then import it.

Nothing in the scene changes until the engine answers with a complete bundle; an error, a crash or a
cancel only reports. The UI runs this as a modal operator polled by a timer (the pipe is read by the
engine client's threads, bpy is touched only here, on the main thread); `execute` runs the same steps
blocking, for scripts and background Blender.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import bpy

from . import engine_process, preferences, properties
from .engine_link import AlignOptions, ReconstructOptions, find_sequence, options_json, read_bundle
from .engine_process import EngineJob
from .errors import EngineError, EngineUnavailable, InputError
from .importer import first_scene_frame, import_bundle, import_notes, options_from_settings

# The running reconstruction (one at a time), reachable by the Cancel operator and the panels.
_job: EngineJob | None = None
# How many frames Blender counts in the running job's range (to warn when the engine decoded fewer).
_expected_frames: int | None = None


def active_clip(context):
    return getattr(context, "edit_movieclip", None) or context.scene.active_clip


def bundle_dir(clip) -> Path:
    """Next to the .blend (//parallax/CLIP) when it is saved, else in the extension's user folder. Clips of the
    same name in different folders get CLIP, CLIP-2, ...: the first that is free or holds a bundle of this clip."""
    name = bpy.path.clean_name(Path(clip.filepath).stem or clip.name)
    parent = Path(bpy.path.abspath("//parallax")) if bpy.data.filepath else preferences.user_dir("bundles")
    video = Path(bpy.path.abspath(clip.filepath, library=clip.library)).absolute()
    for k in range(1, 1000):
        folder = parent / (name if k == 1 else f"{name}-{k}")
        if not folder.exists() or _bundle_source(folder) == video:
            return folder
    raise EngineUnavailable(f"{parent} holds 999 folders named after clips called {name}",
                            "move old bundles out of that folder")


def _bundle_source(folder: Path) -> Path | None:
    """The absolute source clip a bundle folder's scene.json names (None: not a readable bundle)."""
    try:
        source = json.loads((folder / "scene.json").read_text()).get("source_clip")
        return Path(source).absolute() if isinstance(source, str) and source else None
    except (OSError, ValueError, AttributeError):
        return None


def frame_range(clip, settings) -> list:
    """[first, end) as 0-based indices into the clip's frames: those the clip shows in the scene frames Start to
    End (first_scene_frame: Start Frame and Frame Offset), where the import keys them; end None is the clip's
    end (the engine counts the frames it can decode, which may differ from Blender's count)."""
    if settings.use_clip_range:
        return [0, None]
    shown = first_scene_frame(clip)  # the scene frame showing the clip's frame 0
    first = max(settings.frame_start - shown, 0)
    end = min(settings.frame_end - shown + 1, clip.frame_duration)
    if end - first < 1:
        raise EngineUnavailable(f"the frame range selects no frame of '{clip.name}'",
                                "set Start and End inside the clip, or use the whole clip")
    return [first, end]


def reconstruct_options(context, clip) -> dict:
    """The options of the engine's reconstruct request for `clip`, from the scene's settings and the preferences:
    an engine.options.ReconstructOptions as JSON (docs/protocol.md), so every name is the engine's."""
    settings = context.scene.parallax
    prefs = preferences.get(context)
    video = Path(bpy.path.abspath(clip.filepath, library=clip.library))
    if not video.is_file():
        raise EngineUnavailable(f"the clip file {video} does not exist", "relink the clip in the Movie Clip Editor")
    if clip.source == "SEQUENCE":
        check_sequence_start(video)
    stride, steps, size = properties.quality(settings)
    device, precision = preferences.device_choice(prefs)
    distortion = clip_distortion(clip) if settings.use_clip_camera else ("none", ())
    return options_json(ReconstructOptions(
        video=video,
        out=bundle_dir(clip),
        model=settings.model,
        model_dir=preferences.model_folder(prefs, settings.model),
        variant=settings.variant if settings.model == "geometrycrafter" else None,
        device=device,
        precision=precision,
        runtime=prefs.runtime,
        window_batch=prefs.window_batch,
        seed=settings.seed,
        stride=stride,
        steps=steps,
        size=size,  # None: the engine fits the size to the clip's aspect
        frames=frame_range(clip, settings),
        point_stride=settings.point_stride,
        window_storage=settings.window_storage,
        align=align_options(clip, settings),
        distortion_model=distortion[0],
        distortion=distortion[1],
        # Image sequences store no rate (clip.fps is 0): they play at the scene's.
        fps=context.scene.render.fps / context.scene.render.fps_base if clip.source == "SEQUENCE" else None,
    ))


def align_options(clip, settings) -> AlignOptions:
    """The alignment's settings: zoom shot and tripod, and with Use Clip Camera the clip's Camera settings
    (Movie Clip > Camera): the focal length in mm on the sensor's width (Blender's focal in pixels is focal *
    clip width / sensor width, whichever units the panel shows) and the principal point, turned from Blender's
    pixels (y up from the bottom) to the engine's (y down from the top); and the Advanced panel's smoothness."""
    per_frame = "on" if settings.zoom_shot else "auto"  # off: detected
    nodal_pan = settings.tripod.lower()
    if not settings.use_clip_camera:
        return AlignOptions(per_frame_focal=per_frame, nodal_pan=nodal_pan, smoothness=settings.smoothness)
    camera = clip.tracking.camera
    cx, cy = camera.principal_point_pixels
    return AlignOptions(per_frame_focal=per_frame, nodal_pan=nodal_pan, smoothness=settings.smoothness,
                        focal=camera.focal_length, focal_units="mm",
                        sensor_width=camera.sensor_width, focal_mode=settings.focal_mode.lower(),
                        principal_point=(cx, clip.size[1] - cy))


# Blender's distortion coefficients of each model (MovieTrackingCamera), in the engine's order (engine/clips/lens.py).
_DISTORTION = {"POLYNOMIAL": ("k1", "k2", "k3"), "DIVISION": ("division_k1", "division_k2"),
               "NUKE": ("nuke_k1", "nuke_k2"),
               "BROWN": ("brown_k1", "brown_k2", "brown_k3", "brown_k4", "brown_p1", "brown_p2")}


def clip_distortion(clip) -> tuple[str, tuple[float, ...]]:
    """The clip camera's lens distortion as the engine's (model, coefficients), ("none", ()) when all are 0.
    Blender counts y up: its Brown tangential (p1, p2) are the engine's (p2, -p1) (OpenCV's axes)."""
    camera = clip.tracking.camera
    values = tuple(float(getattr(camera, name)) for name in _DISTORTION[camera.distortion_model])
    if not any(values):
        return "none", ()
    if camera.distortion_model == "BROWN":
        k1, k2, k3, k4, p1, p2 = values
        values = (k1, k2, k3, k4, -p2, p1)
    return camera.distortion_model.lower(), values


def check_sequence_start(frame_file: Path) -> None:
    """Refuse a sequence clip that Blender starts after the sequence's first file: the engine's frame 0 is that
    first file, and the bundle's frame k is imported at clip frame k."""
    try:
        first = find_sequence(frame_file).files[0]
    except InputError as exc:
        raise EngineUnavailable(exc.problem, exc.fix) from None
    if first.name != frame_file.name:
        raise EngineUnavailable(f"the clip starts at {frame_file.name}, inside the image sequence that begins at "
                                f"{first.name}", f"open the clip from {first.name}, or move the earlier frames away")


def start(context) -> EngineJob:
    """Start (or reuse) the engine and send it the active clip's reconstruction."""
    global _job
    if _job is not None and not _job.done:
        raise EngineUnavailable("a reconstruction is already running", "wait for it or cancel it")
    clip = active_clip(context)
    if clip is None:
        raise EngineUnavailable("there is no active clip", "open a clip in the Movie Clip Editor")
    global _expected_frames
    options = reconstruct_options(context, clip)  # bad settings are refused before an engine starts
    first, end = options["frames"]
    _expected_frames = (clip.frame_duration if end is None else end) - first
    engine = engine_process.get_engine(preferences.engine_python(context))
    _job = EngineJob(engine, {"type": "reconstruct", "id": engine.new_id("reconstruct"), "options": options})
    context.window_manager.parallax_message = ""
    show(context, _job)
    return _job


def show(context, job: EngineJob) -> None:
    wm = context.window_manager
    wm.parallax_running = not job.done
    wm.parallax_progress = job.fraction
    wm.parallax_stage = job.stage
    wm.parallax_log = log_text(job.log)
    for area in context.screen.areas if context.screen else ():
        if area.type in {"CLIP_EDITOR", "VIEW_3D"}:
            area.tag_redraw()


def log_text(log: list[tuple[str, str]]) -> str:
    """The engine's (level, sentence) log as the panel keeps it (WindowManager.parallax_log): "level\tsentence"
    lines."""
    return "\n".join(f"{level}\t{message}" for level, message in log)


def result_message(collection, bundle: Path) -> str:
    """What the panel says after a reconstruction was imported."""
    return f"Reconstructed into '{collection.name}' ({bundle})"


def frame_shortfall(frames: int, expected: int | None) -> str | None:
    """A warning when a bundle holds fewer frames than Blender counts in the reconstructed range."""
    if expected is None or frames >= expected:
        return None
    return (f"the bundle has {frames} frames but Blender counts {expected} in the clip's range: the engine "
            "decoded only part of the clip (a truncated or damaged file?); check the footage")


def explain(problem: str, fix: str) -> str:
    return f"{problem} — {fix}" if fix else problem


def finish(context, job: EngineJob) -> tuple[set, str]:
    """Import a finished job's bundle. Returns (report type, message)."""
    show(context, job)
    wm = context.window_manager
    if job.outcome == "result":
        try:
            collection = import_bundle(context, job.bundle, options_from_settings(context.scene.parallax))
            level, message = {"INFO"}, result_message(collection, job.bundle)
            for note in import_notes(collection):
                job.log.append(("warning", note))
            note = frame_shortfall(len(read_bundle(job.bundle).frames), _expected_frames)
            if note:
                job.log.append(("warning", note))
        except EngineError as exc:
            level, message = {"ERROR"}, f"Importing {job.bundle} failed: {explain(exc.problem, exc.fix)}"
    elif job.outcome == "cancelled":
        level, message = {"WARNING"}, "Reconstruction cancelled; the scene is unchanged"
    else:
        level, message = {"ERROR"}, f"Reconstruction failed: {explain(job.problem, job.fix)}"
    wm.parallax_message = message
    return level, message


class PARALLAX_OT_reconstruct(bpy.types.Operator):
    """Reconstruct camera, depth and points of the active clip with the engine, then import them"""

    bl_idname = "parallax.reconstruct"
    bl_label = "Reconstruct"
    bl_options = {"REGISTER", "UNDO"}  # the import is one undo step

    _timer = None
    _job: EngineJob | None = None

    @classmethod
    def poll(cls, context):
        return active_clip(context) is not None and (_job is None or _job.done)

    def _start(self, context) -> EngineJob | None:
        try:
            return start(context)
        except EngineUnavailable as exc:
            context.window_manager.parallax_message = explain(exc.problem, exc.fix)
            self.report({"ERROR"}, context.window_manager.parallax_message)
            return None

    def execute(self, context):
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        while not job.poll():
            time.sleep(0.05)
        return self._end(context, job)

    def invoke(self, context, event):
        self._job = self._start(context)
        if self._job is None:
            return {"CANCELLED"}
        self._timer = context.window_manager.event_timer_add(0.1, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._job.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        done = self._job.poll()
        show(context, self._job)
        if not done:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._end(context, self._job)

    def _end(self, context, job: EngineJob):
        level, message = finish(context, job)
        for kind, text in job.log:  # the engine's warnings reach the status bar and the Info log too
            if kind == "warning":
                self.report({"WARNING"}, text)
        self.report(level, message)
        return {"FINISHED"} if level == {"INFO"} else {"CANCELLED"}


class PARALLAX_OT_cancel(bpy.types.Operator):
    """Stop the running reconstruction; the scene stays as it was"""

    bl_idname = "parallax.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return _job is not None and not _job.done

    def execute(self, context):
        _job.cancel()
        return {"FINISHED"}


class PARALLAX_OT_stop_engine(bpy.types.Operator):
    """Stop the engine process and so free the GPU memory its loaded model holds (e.g. for Cycles); the next
    reconstruction starts it again and reloads the model"""

    bl_idname = "parallax.stop_engine"
    bl_label = "Stop Engine / Free GPU Memory"

    @classmethod
    def poll(cls, context):
        return engine_process.current_engine() is not None and (_job is None or _job.done)

    def execute(self, context):
        pid = engine_process.current_engine().pid
        engine_process.stop_engine()
        self.report({"INFO"}, f"Stopped the engine (process {pid}); its memory is free")
        return {"FINISHED"}


def forget_job() -> None:
    """Cancel the running job and drop it: nothing will import its result (the engine stays up)."""
    global _job
    if _job is not None:
        _job.cancel()
    _job = None
    bpy.context.window_manager.parallax_running = False


@bpy.app.handlers.persistent
def forget_job_on_load(*_args):
    """A new file replaces the scene the running job would import into, and ends its modal operator."""
    forget_job()


classes = (PARALLAX_OT_reconstruct, PARALLAX_OT_cancel, PARALLAX_OT_stop_engine)
