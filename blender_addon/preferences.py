"""Add-on preferences: which Python runs the engine (an isolated environment the add-on creates, or an
existing interpreter), the model folder, the device, precision, runtime and window batch."""

from __future__ import annotations

import sys
from pathlib import Path

import bpy

from . import engine_env, engine_process
from .engine_link import MODELS, ReconstructOptions
from .properties import from_option
from .wrapping import PREFERENCES_MARGIN, draw_text

# The environment being built (at most one), shown by the preferences panel.
_builder: engine_env.EnvBuilder | None = None
# The last look at the shared engine environment (the panel draws often; a look runs its Python once).
_status: engine_env.EnvStatus | None = None


def get(context=None) -> ParallaxPreferences:
    return (context or bpy.context).preferences.addons[__package__].preferences


def user_dir(name: str) -> Path:
    """A folder of the extension's own user data (kept across updates of the extension)."""
    try:
        return Path(bpy.utils.extension_path_user(__package__, path=name, create=True))
    except ValueError:  # installed as a legacy add-on, not as an extension
        return Path(bpy.utils.user_resource("DATAFILES", path=f"parallax/{name}", create=True))


def environment_status(refresh: bool = False) -> engine_env.EnvStatus:
    """The shared engine environment (engine_env.find_environment), looked at again when `refresh`."""
    global _status
    if _status is None or refresh:
        requirements = engine_env.read_requirements(engine_process.engine_root())
        _status = engine_env.find_environment(engine_env.data_root(), requirements)
    return _status


def building() -> bool:
    return _builder is not None and _builder.state == "running"


def engine_python(context=None) -> str:
    """The interpreter that runs the engine, or EngineUnavailable saying how to get one."""
    prefs = get(context)
    if prefs.python_source == "CUSTOM":
        python = bpy.path.abspath(prefs.python_path)
        if not python:
            raise engine_process.EngineUnavailable("no engine Python is set",
                                                   "set 'Python' in the Parallax add-on preferences")
        return python
    if building():
        raise engine_process.EngineUnavailable("the engine environment is being created",
                                               "wait until the Parallax add-on preferences say it is ready")
    status = environment_status(refresh=True)
    if status.state != "found":
        raise engine_process.EngineUnavailable(status.problem, f"{status.fix}, or choose an existing Python")
    return str(status.python)


def model_folder(prefs, model: str) -> str | None:
    """The model directory the preferences set for `model` (absolute), or None for the engine's default."""
    folder = prefs.geometrycrafter_dir if model == "geometrycrafter" else prefs.model_dir
    return bpy.path.abspath(folder) or None


def draw_box_text(box, context, text: str, icon: str = "NONE") -> None:
    """`text` wrapped to the Preferences' width in a box of the add-on's preferences (paths, problems, fixes)."""
    draw_text(box, context, text, icon, boxed=True, margin=PREFERENCES_MARGIN)


def licences_accepted(model: str) -> str:
    """The name of the preference that remembers that the licences of `model`'s weights were accepted."""
    return f"{model}_licences_accepted"


def device_choice(prefs) -> tuple[str | None, str | None]:
    """The engine's `device` and `precision` options (None: the engine's automatic choice, engine.devices)."""
    device = {"auto": None, "cuda": f"cuda:{prefs.gpu_index}"}.get(prefs.device, prefs.device)
    return device, None if prefs.precision == "auto" else prefs.precision


class ParallaxPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python_source: bpy.props.EnumProperty(
        name="Engine Python",
        items=[("ENV", "Engine Environment", "An isolated environment this add-on creates with the engine's packages"),
               ("CUSTOM", "Existing Python", "A Python interpreter that already has the engine's requirements")],
        default="ENV")
    python_path: bpy.props.StringProperty(name="Python", subtype="FILE_PATH",
                                          description="Interpreter with the engine's requirements (torch, ...)")
    base_python: bpy.props.StringProperty(
        name="Base Python", subtype="FILE_PATH",
        description="Python 3.11+ the environment is made from (empty: Blender's own)")
    model_dir: bpy.props.StringProperty(
        name="Model Folder", subtype="DIR_PATH",
        description="Converted Geo4D model (empty: ~/.cache/parallax/models/geo4d or $PARALLAX_MODEL_DIR)")
    geometrycrafter_dir: bpy.props.StringProperty(
        name="GeometryCrafter Folder", subtype="DIR_PATH",
        description="Converted GeometryCrafter model (empty: ~/.cache/parallax/models/geometrycrafter or "
                    "$PARALLAX_MODEL_DIR)")
    device: bpy.props.EnumProperty(
        name="Device",
        items=[("auto", "Auto", "The first NVIDIA GPU, else Apple Silicon's GPU, else the CPU"),
               ("cuda", "CUDA", "An NVIDIA GPU (choose which below); fp16, bf16 (Ampere and later) or fp32"),
               ("mps", "Apple Silicon", "The GPU of a Mac with Apple Silicon (MPS); fp16 or fp32"),
               ("cpu", "CPU", "Slow; for small clips and tests; fp32 or bf16")],
        default="auto")
    gpu_index: bpy.props.IntProperty(name="GPU", min=0, default=0,
                                     description="Which NVIDIA GPU (cuda:N; 0 is the first, as nvidia-smi lists them)")
    precision: bpy.props.EnumProperty(
        name="Precision",
        items=[("auto", "Auto", "fp16 on GPUs, fp32 on the CPU"), ("fp16", "fp16", "Half precision (GPUs)"),
               ("bf16", "bf16", "bfloat16 (NVIDIA Ampere and later, CPU)"), ("fp32", "fp32", "Full precision")],
        default="auto")
    # How this machine runs the networks: the runtime, and windows denoised together (more: faster on a large GPU).
    runtime: bpy.props.EnumProperty(name="Runtime", **from_option(ReconstructOptions, "runtime"))
    window_batch: bpy.props.IntProperty(name="Window Batch", **from_option(ReconstructOptions, "window_batch"))

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "python_source", expand=True)
        if self.python_source == "CUSTOM":
            layout.prop(self, "python_path")
        else:
            self.draw_environment(layout.box(), context)
        layout.prop(self, "model_dir")
        layout.prop(self, "geometrycrafter_dir")
        from .weights import draw_weights  # weights.py uses this module's functions

        for model in MODELS:
            draw_weights(layout.box(), context, self, model)
        row = layout.row()
        row.prop(self, "device")
        if self.device == "cuda":
            row.prop(self, "gpu_index")
        layout.prop(self, "precision")
        row = layout.row()
        row.prop(self, "runtime")
        row.prop(self, "window_batch")

    def draw_environment(self, box, context) -> None:
        """Found / being created / broken or missing (with the fix), and the buttons."""
        status = environment_status()
        if building():
            box.progress(factor=_builder.fraction, type="BAR", text=_builder.stage)
            draw_box_text(box, context, f"Creating {_builder.env_dir}")
            box.operator(PARALLAX_OT_cancel_environment.bl_idname, icon="CANCEL")
            return
        if status.state == "found":
            draw_box_text(box, context, f"Engine environment found: {status.env_dir}", icon="CHECKMARK")
        else:
            draw_box_text(box, context, status.problem, icon="ERROR")
            draw_box_text(box, context, f"Fix: {status.fix}", icon="INFO")
        if _builder is not None and _builder.state != "done":
            draw_box_text(box, context, "\n".join(_builder.message.splitlines()[-4:]), icon="ERROR")
        row = box.row()
        if status.state == "found":
            row.operator(PARALLAX_OT_create_environment.bl_idname, icon="CONSOLE", text="Update Engine Environment")
        else:
            row.operator(PARALLAX_OT_create_environment.bl_idname, icon="CONSOLE")
        row.operator(PARALLAX_OT_check_environment.bl_idname, icon="FILE_REFRESH")
        box.prop(self, "base_python")
        draw_box_text(box, context, f"One environment for every Blender version, kept in {engine_env.data_root()}")
        if not bpy.app.online_access:
            draw_box_text(box, context, "Creating it needs online access (Preferences > System > Network)",
                          icon="INFO")


for _model in MODELS:  # one stored acceptance per model of the registry, read by weights.py
    ParallaxPreferences.__annotations__[licences_accepted(_model)] = bpy.props.BoolProperty(
        name="I accept these licences", default=False,
        description="Accept the licences above: only then does the engine download these weights")


class PARALLAX_OT_create_environment(bpy.types.Operator):
    """Create an isolated Python environment for the engine and install its requirements (needs the network)"""

    bl_idname = "parallax.create_environment"
    bl_label = "Create Engine Environment"

    _timer = None

    def execute(self, context):
        global _builder
        if not bpy.app.online_access:
            self.report({"ERROR"}, "Online access is disabled: allow it in Preferences > System > Network to "
                                   "install the engine's packages, or choose an existing Python")
            return {"CANCELLED"}
        if building():
            self.report({"WARNING"}, "The engine environment is already being created")
            return {"CANCELLED"}
        prefs = get(context)
        base = bpy.path.abspath(prefs.base_python) or sys.executable
        try:
            version = engine_env.python_version(base)
        except engine_process.EngineUnavailable as exc:
            self.report({"ERROR"}, f"{exc.problem} ({exc.fix})")
            return {"CANCELLED"}
        target = engine_env.env_dir(engine_env.data_root(), version)
        requirements = engine_env.read_requirements(engine_process.engine_root())
        pip_args, torch_build = engine_env.torch_source(sys.platform, engine_env.nvidia_gpu())
        _builder = engine_env.EnvBuilder(base, target, requirements, pip_args).start()
        self.report({"INFO"}, f"Creating the engine environment in {target} with {torch_build}")
        self._timer = context.window_manager.event_timer_add(0.5, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()
        if _builder.state == "running":
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        environment_status(refresh=True)
        if _builder.state == "done":
            self.report({"INFO"}, "Engine environment ready")
            return {"FINISHED"}
        self.report({"ERROR"}, f"Engine environment: {_builder.message.splitlines()[0] if _builder.message else ''}")
        return {"CANCELLED"}


class PARALLAX_OT_check_environment(bpy.types.Operator):
    """Look again for the engine environment (e.g. after creating it from another Blender)"""

    bl_idname = "parallax.check_environment"
    bl_label = "Check Again"

    def execute(self, context):
        status = environment_status(refresh=True)
        self.report({"INFO"} if status.state == "found" else {"WARNING"},
                    f"Engine environment found: {status.env_dir}" if status.state == "found"
                    else f"{status.problem} ({status.fix})")
        return {"FINISHED"}


class PARALLAX_OT_cancel_environment(bpy.types.Operator):
    """Stop creating the engine environment"""

    bl_idname = "parallax.cancel_environment"
    bl_label = "Cancel"

    def execute(self, context):
        if _builder is not None:
            _builder.cancel()
        return {"FINISHED"}


classes = (ParallaxPreferences, PARALLAX_OT_create_environment, PARALLAX_OT_check_environment,
           PARALLAX_OT_cancel_environment)
