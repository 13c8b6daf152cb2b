"""The Reconstruct panel, in the Movie Clip Editor's sidebar and the 3D Viewport's (category Parallax)."""

import bpy

from . import engine_process, export, properties, reconstruct
from .importer import draw_quality, draw_setup
from .wrapping import draw_text


def draw_reconstruct(layout, context) -> None:
    settings = context.scene.parallax
    wm = context.window_manager
    clip = reconstruct.active_clip(context)
    layout.label(text=clip.name if clip else "No active clip", icon="SEQUENCE" if clip else "ERROR")
    col = layout.column()
    col.enabled = not wm.parallax_running
    col.prop(settings, "model")
    if settings.model == "geometrycrafter":
        col.prop(settings, "variant")
    col.prop(settings, "preset")
    if settings.preset == "CUSTOM":
        sub = col.column(align=True)
        for name in ("stride", "steps", "use_custom_size"):
            sub.prop(settings, name)
        if settings.use_custom_size:
            sub.prop(settings, "size_h")
            sub.prop(settings, "size_w")
    else:
        stride, steps, _ = properties.quality(settings)
        col.label(text=f"stride {stride or 'of the model'}, {steps} steps, size fitted to the clip")
    col.prop(settings, "zoom_shot")
    col.prop(settings, "tripod")
    col.prop(settings, "use_clip_camera")
    if settings.use_clip_camera:
        col.prop(settings, "focal_mode")
    col.prop(settings, "use_clip_range")
    if not settings.use_clip_range:
        row = col.row(align=True)
        row.prop(settings, "frame_start")
        row.prop(settings, "frame_end")
    col.prop(settings, "point_stride")
    row = col.row(align=True)
    row.label(text="Import")
    for name in ("import_camera", "import_points", "import_depth"):
        row.prop(settings, name, toggle=True)
    for name in ("floor_fit", "accumulate", "confidence_threshold", "point_radius", "rotation_mode"):
        col.prop(settings, name)
    if wm.parallax_running:
        layout.progress(factor=wm.parallax_progress, type="BAR", text=wm.parallax_stage)
        layout.operator(reconstruct.PARALLAX_OT_cancel.bl_idname, icon="CANCEL")
    else:
        layout.operator(reconstruct.PARALLAX_OT_reconstruct.bl_idname, icon="VIEW_CAMERA")
        layout.operator(export.EXPORT_SCENE_OT_parallax.bl_idname, text="Export...", icon="EXPORT")
        if engine_process.current_engine() is not None:  # the model stays loaded between runs
            layout.operator(reconstruct.PARALLAX_OT_stop_engine.bl_idname, icon="X")
    if wm.parallax_message:
        draw_text(layout, context, wm.parallax_message)
    draw_quality(layout, context)
    for line in wm.parallax_log.splitlines():
        level, _, message = line.partition("\t")
        draw_text(layout, context, message, icon="ERROR" if level == "warning" else "INFO")


class ReconstructPanel:
    """The same panel in each editor's sidebar; subclasses name the editor."""

    bl_label = "Parallax"
    bl_region_type = "UI"
    bl_category = "Parallax"

    def draw(self, context):
        draw_reconstruct(self.layout, context)


class PARALLAX_PT_clip(ReconstructPanel, bpy.types.Panel):
    bl_space_type = "CLIP_EDITOR"


class PARALLAX_PT_view3d(ReconstructPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"


class SetupPanel:
    """Scene Setup, a sub-panel of each editor's Parallax panel: Set Origin, Floor, Scale, X/Y Axis."""

    bl_label = "Scene Setup"
    bl_region_type = "UI"
    bl_category = "Parallax"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        draw_setup(self.layout, context)


class PARALLAX_PT_clip_setup(SetupPanel, bpy.types.Panel):
    bl_space_type = "CLIP_EDITOR"
    bl_parent_id = "PARALLAX_PT_clip"


class PARALLAX_PT_view3d_setup(SetupPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_parent_id = "PARALLAX_PT_view3d"


class AdvancedPanel:
    """Advanced, a closed sub-panel of each editor's Parallax panel: the engine's options whose defaults suit
    most shots (the runtime and window batch, which depend on the machine, are in the preferences)."""

    bl_label = "Advanced"
    bl_region_type = "UI"
    bl_category = "Parallax"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        col = self.layout.column()
        col.enabled = not context.window_manager.parallax_running
        for name in ("seed", "window_storage", "smoothness"):
            col.prop(context.scene.parallax, name)


class PARALLAX_PT_clip_advanced(AdvancedPanel, bpy.types.Panel):
    bl_space_type = "CLIP_EDITOR"
    bl_parent_id = "PARALLAX_PT_clip"


class PARALLAX_PT_view3d_advanced(AdvancedPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_parent_id = "PARALLAX_PT_view3d"


classes = (PARALLAX_PT_clip, PARALLAX_PT_view3d, PARALLAX_PT_clip_advanced, PARALLAX_PT_view3d_advanced,
           PARALLAX_PT_clip_setup, PARALLAX_PT_view3d_setup)
