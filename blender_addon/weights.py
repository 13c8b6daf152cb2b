"""Model weights from the add-on preferences: for every model of the engine's registry, the state of its weights
(found and verified / missing / broken, with the fix), its licences (the text the engine's `download` shows,
accepted once and remembered), "Download and Convert" and "Convert Downloaded Files…", with progress and Cancel.

The work runs in the engine process (a `weights` request, docs/protocol.md): the engine's own download, convert
and verification (manifest, size and sha256 of every file). Blender's Python never opens a weights file. The engine
is asked to download only when Blender's online access is on and the licences were accepted, and only then gets
the acceptance. A cancel stops the engine's job (after a grace, the engine itself): what was downloaded stays in
the download folder for the next download (Geo4D's partial file resumes), and the model folder stays as it was.
"""

from __future__ import annotations

import re
import time

import bpy

from . import engine_process, preferences
from .engine_link import MODELS, model_package
from .engine_process import EngineJob
from .errors import EngineUnavailable

# The running weights job (at most one) and the model it is for.
_job: EngineJob | None = None
_job_model: str | None = None
# What the engine last said about each model's weights (its `weights` event), and how each model's last job ended.
_states: dict[str, dict] = {}
_messages: dict[str, str] = {}

ACTION_WORDS = {"check": "Checking", "download": "Downloading and converting", "convert": "Converting"}


def running(model: str | None = None) -> bool:
    return _job is not None and not _job.done and (model is None or model == _job_model)


def state(model: str) -> dict | None:
    """The engine's last word on `model`'s weights: {"state": "verified" | "missing" | "broken", "model_dir",
    "problem", "fix", ...}, or None before the first check."""
    return _states.get(model)


def state_lines(model: str) -> list[tuple[str, str]]:
    """(icon, text) lines the preferences show for `model`'s weights."""
    known = state(model)
    if known is None:
        return [("QUESTION", "Weights not checked yet: press Check")]
    if known["state"] == "verified":
        return [("CHECKMARK", f"Found and verified: {known['model_dir']}")]
    return [("ERROR", known["problem"]), ("INFO", f"Fix: {known['fix']}")]


def start(context, model: str, action: str, source: str | None = None) -> EngineJob:
    """Send the engine a `weights` request for `model` (check, download then convert, or convert `source`);
    EngineUnavailable says why it may not run, before anything starts."""
    global _job, _job_model
    if model not in MODELS:
        raise EngineUnavailable(f"unknown model {model!r}", f"use one of {', '.join(MODELS)}")
    if running():
        raise EngineUnavailable(f"the {model_package(_job_model).LABEL} weights are busy", "wait or cancel it")
    prefs = preferences.get(context)
    if action == "download":
        if not bpy.app.online_access:
            raise EngineUnavailable("online access is disabled, so Parallax may not download the weights",
                                    "allow it in Preferences > System > Network, or download the files elsewhere "
                                    "and use Convert Downloaded Files")
        if not getattr(prefs, preferences.licences_accepted(model)):
            raise EngineUnavailable(f"the licences of the {model_package(model).LABEL} weights are not accepted",
                                    "read them in the Parallax preferences and tick 'I accept these licences'")
    engine = engine_process.get_engine(preferences.engine_python(context))
    _job = EngineJob(engine, {"type": "weights", "id": engine.new_id("weights"), "model": model, "action": action,
                              "model_dir": preferences.model_folder(prefs, model), "source": source,
                              "accept_licences": action == "download"})
    _job_model = model
    _messages.pop(model, None)
    return _job


def finish(job: EngineJob, model: str, action: str) -> tuple[set, str]:
    """Take the engine's answer: the model's state, and (report type, message), also kept for the preferences."""
    label = model_package(model).LABEL
    if job.weights is not None:
        _states[model] = job.weights
    if job.outcome == "result":
        known = _states[model]
        level = {"INFO"} if known["state"] == "verified" else {"WARNING"}
        message = (f"{label} weights found and verified in {known['model_dir']}" if known["state"] == "verified"
                   else f"{label} weights: {known['problem']} — {known['fix']}")
    elif job.outcome == "cancelled":
        level, message = {"WARNING"}, (f"{ACTION_WORDS[action]} {label} cancelled; the model folder is as it was"
                                       + (" (the files already downloaded are kept for the next download)"
                                          if action == "download" else ""))
    else:
        level, message = {"ERROR"}, f"{ACTION_WORDS[action]} {label} failed: {job.problem}" + (
            f" — {job.fix}" if job.fix else "")
    _messages[model] = message
    return level, message


def forget_job() -> None:
    """Cancel the running weights job (the add-on is disabled)."""
    global _job
    if _job is not None:
        _job.cancel()
    _job = None


def licence_paragraphs(text: str) -> str:
    """A model's LICENCES with each item on one line (its indented continuation lines joined to it), so the
    preferences wrap an item to their width rather than keep the console's line breaks."""
    return re.sub(r"\n {3,}", " ", text)


def draw_weights(box, context, prefs, model: str) -> None:
    """One model's weights in the preferences: state, licences with the acceptance, the buttons or the progress."""
    package = model_package(model)
    box.label(text=f"{package.LABEL} weights", icon="FILE_3D")
    for icon, text in state_lines(model):
        preferences.draw_box_text(box, context, text, icon)
    if running(model):
        box.progress(factor=_job.fraction, type="BAR", text=_job.stage)
        box.operator(PARALLAX_OT_cancel_weights.bl_idname, icon="CANCEL")
        return
    if model in _messages:
        preferences.draw_box_text(box, context, _messages[model], icon="INFO")
    preferences.draw_box_text(box, context, licence_paragraphs(package.LICENCES))
    box.prop(prefs, preferences.licences_accepted(model))
    row = box.row()
    download = row.row()
    download.enabled = bpy.app.online_access and getattr(prefs, preferences.licences_accepted(model))
    download.operator(PARALLAX_OT_download_weights.bl_idname, icon="IMPORT").model = model
    row.operator(PARALLAX_OT_convert_weights.bl_idname, icon="FILE_FOLDER").model = model
    row.operator(PARALLAX_OT_check_weights.bl_idname, icon="FILE_REFRESH").model = model
    if not bpy.app.online_access:
        preferences.draw_box_text(box, context, "Downloading needs online access (Preferences > System > Network)",
                                  icon="INFO")


class _WeightsJob:
    """Runs one weights request: blocking in background Blender and scripts without a window, else as a modal
    operator polled by a timer (as Reconstruct), so Blender stays responsive and shows the progress."""

    model: bpy.props.StringProperty(name="Model", options={"HIDDEN"})
    _timer = None
    _job: EngineJob | None = None
    _action = "check"

    def run(self, context, action: str, source: str | None = None):
        self._action = action
        try:
            job = start(context, self.model, action, source)
        except EngineUnavailable as exc:
            message = f"{exc.problem} — {exc.fix}"
            _messages[self.model] = message
            self.report({"ERROR"}, message)
            return {"CANCELLED"}
        if bpy.app.background or context.window is None:
            while not job.poll():
                time.sleep(0.05)
            return self._end(job)
        self._job = job
        self._timer = context.window_manager.event_timer_add(0.1, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        done = self._job.poll()
        for window in context.window_manager.windows:
            for area in window.screen.areas:
                area.tag_redraw()
        if not done:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._end(self._job)

    def _end(self, job: EngineJob):
        level, message = finish(job, self.model, self._action)
        self.report(level, message)
        return {"FINISHED"} if job.outcome == "result" else {"CANCELLED"}


class PARALLAX_OT_check_weights(_WeightsJob, bpy.types.Operator):
    """Verify the model folder's weights against their manifest (size and sha256 of every file), in the engine"""

    bl_idname = "parallax.check_weights"
    bl_label = "Check"

    def execute(self, context):
        return self.run(context, "check")


class PARALLAX_OT_download_weights(_WeightsJob, bpy.types.Operator):
    """Download the official weights with the engine, convert them into the model folder and verify them (needs
    online access and the licences accepted; an interrupted download resumes)"""

    bl_idname = "parallax.download_weights"
    bl_label = "Download and Convert"

    def execute(self, context):
        return self.run(context, "download")


class PARALLAX_OT_convert_weights(_WeightsJob, bpy.types.Operator):
    """Convert weights downloaded by hand into the model folder and verify them: choose the folder holding them
    (Geo4D: model.ckpt and vae.ckpt; GeometryCrafter: the hub's <owner>/<name>/ folders)"""

    bl_idname = "parallax.convert_weights"
    bl_label = "Convert Downloaded Files…"

    directory: bpy.props.StringProperty(name="Downloaded Files", subtype="DIR_PATH")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        if not self.directory:
            self.report({"ERROR"}, "Choose the folder that holds the downloaded files")
            return {"CANCELLED"}
        return self.run(context, "convert", bpy.path.abspath(self.directory))


class PARALLAX_OT_cancel_weights(bpy.types.Operator):
    """Stop downloading or converting the weights; the model folder stays as it was"""

    bl_idname = "parallax.cancel_weights"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return running()

    def execute(self, context):
        _job.cancel()
        return {"FINISHED"}


classes = (PARALLAX_OT_check_weights, PARALLAX_OT_download_weights, PARALLAX_OT_convert_weights,
           PARALLAX_OT_cancel_weights)
