"""Add-on preferences: which Python runs the engine (an isolated environment the add-on creates, or an
existing interpreter), the model folder and the device."""

from __future__ import annotations

import sys
from pathlib import Path

import bpy

from . import engine_env, engine_process

ENV_FOLDER = "engine-env"

# The environment being built (at most one), shown by the preferences panel.
_builder: engine_env.EnvBuilder | None = None


def get(context=None) -> ParallaxPreferences:
    return (context or bpy.context).preferences.addons[__package__].preferences


def user_dir(name: str) -> Path:
    """A folder of the extension's own user data (kept across updates of the extension)."""
    try:
        return Path(bpy.utils.extension_path_user(__package__, path=name, create=True))
    except ValueError:  # installed as a legacy add-on, not as an extension
        return Path(bpy.utils.user_resource("DATAFILES", path=f"parallax/{name}", create=True))


def env_dir() -> Path:
    """Where the add-on keeps the engine environment."""
    return user_dir(ENV_FOLDER)


def engine_python(context=None) -> str:
    """The interpreter that runs the engine, or EngineUnavailable saying how to get one."""
    prefs = get(context)
    if prefs.python_source == "CUSTOM":
        python = bpy.path.abspath(prefs.python_path)
        if not python:
            raise engine_process.EngineUnavailable("no engine Python is set",
                                                   "set 'Python' in the Parallax add-on preferences")
        return python
    python = engine_env.env_python(env_dir())
    if not python.is_file():
        raise engine_process.EngineUnavailable(
            "the engine environment has not been created",
            "press 'Create Engine Environment' in the Parallax add-on preferences, or choose an existing Python")
    return str(python)


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
        items=[("auto", "Auto", "CUDA when available, else the CPU"), ("cuda", "CUDA", "NVIDIA GPU"),
               ("cpu", "CPU", "Slow; for small clips and tests")],
        default="auto")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "python_source", expand=True)
        if self.python_source == "CUSTOM":
            layout.prop(self, "python_path")
        else:
            box = layout.box()
            python = engine_env.env_python(env_dir())
            box.label(text=f"Environment: {python.parent.parent}",
                      icon="CHECKMARK" if python.is_file() else "ERROR")
            box.prop(self, "base_python")
            if _builder is not None and _builder.state == "running":
                box.progress(factor=_builder.fraction, type="BAR", text=_builder.stage)
                box.operator(PARALLAX_OT_cancel_environment.bl_idname, icon="CANCEL")
            else:
                if _builder is not None and _builder.state != "done":
                    for line in _builder.message.splitlines()[-4:]:
                        box.label(text=line, icon="ERROR")
                box.operator(PARALLAX_OT_create_environment.bl_idname, icon="CONSOLE")
                if not bpy.app.online_access:
                    box.label(text="Needs online access (Preferences > System > Network)", icon="INFO")
        layout.prop(self, "model_dir")
        layout.prop(self, "geometrycrafter_dir")
        layout.prop(self, "device")


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
        if _builder is not None and _builder.state == "running":
            self.report({"WARNING"}, "The engine environment is already being created")
            return {"CANCELLED"}
        prefs = get(context)
        base = bpy.path.abspath(prefs.base_python) or sys.executable
        root = engine_process.engine_root()
        _builder = engine_env.EnvBuilder(base, env_dir(), engine_env.read_requirements(root)).start()
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
        if _builder.state == "done":
            self.report({"INFO"}, "Engine environment ready")
            return {"FINISHED"}
        self.report({"ERROR"}, f"Engine environment: {_builder.message.splitlines()[0] if _builder.message else ''}")
        return {"CANCELLED"}


class PARALLAX_OT_cancel_environment(bpy.types.Operator):
    """Stop creating the engine environment"""

    bl_idname = "parallax.cancel_environment"
    bl_label = "Cancel"

    def execute(self, context):
        if _builder is not None:
            _builder.cancel()
        return {"FINISHED"}


classes = (ParallaxPreferences, PARALLAX_OT_create_environment, PARALLAX_OT_cancel_environment)
