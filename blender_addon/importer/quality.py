"""The solve quality (scene.json metadata.alignment.quality, docs/alignment.md) in Blender: on the camera an
animated custom property (the Graph Editor shows the error per frame) and a summary the panel shows (average,
grade, worst frames as buttons that jump there, flagged frames). Pixels are the plate's (render width)."""

from __future__ import annotations

import bpy
import numpy as np
from bpy.props import IntProperty

from ..engine_link import frame_spans, plate_pixels
from ..wrapping import draw_text
from .animation import fcurves_of, set_keys

PROPERTY = "parallax_solve_error"  # animated, pixels at the render width
SUMMARY = "parallax_quality"  # grade, mean_px, worst (scene frames), worst_px, flagged, down_weighted


def key_solve_error(camera: bpy.types.Object, quality: dict | None, scene_frames: np.ndarray,
                    render_width: int) -> None:
    """Key PROPERTY on the camera (its motion action) at each frame that has an error, and set SUMMARY; without
    a quality (an older bundle) remove both."""
    for name in (PROPERTY, SUMMARY):
        if name in camera:
            del camera[name]
    if not quality:
        return
    maps = np.array([np.nan if e is None else e for e in quality["frame_error_px"]], np.float64)
    error = plate_pixels(maps, quality["width"], render_width)
    has = np.isfinite(error)
    camera[PROPERTY] = float(error[has][0]) if has.any() else 0.0
    camera.id_properties_ui(PROPERTY).update(description="Parallax solve error at this frame, in plate pixels",
                                             subtype="PIXEL")
    if has.any():
        set_keys(fcurves_of(camera), f'["{PROPERTY}"]', 0, np.asarray(scene_frames, np.float64)[has], error[has])
    to_scene = [int(f) for f in scene_frames]
    camera[SUMMARY] = {
        "grade": quality["grade"], "mean_px": float(np.nanmean(error)),
        "worst": [to_scene[i] for i in quality["worst_frames"]],
        "worst_px": [float(error[i]) for i in quality["worst_frames"]],
        "flagged": [to_scene[i] for i in quality["flagged_frames"]],
        "down_weighted": [to_scene[i] for i in quality["down_weighted_frames"]],
    }


def draw_quality(layout, context) -> None:
    """The scene camera's solve quality, if it has one: average and grade in plate pixels (the unit of Blender's
    solve error and of the engine's log), the worst scene frames as buttons."""
    camera = context.scene.camera
    summary = camera.get(SUMMARY) if camera is not None else None
    if not summary:
        return
    box = layout.box()
    draw_text(box, context, f"Solve error {summary['mean_px']:.2f} px average in plate pixels ({summary['grade']})",
              icon="CHECKMARK" if summary["grade"] in ("excellent", "good") else "ERROR", boxed=True)
    draw_text(box, context, "Worst scene frames (click to go there)", boxed=True)
    # As many columns as the sidebar's width holds: one row of five is cut to "46: ..." at its default width.
    grid = box.grid_flow(row_major=True, columns=0, even_columns=True, align=True)
    for frame, px in zip(summary["worst"], summary["worst_px"]):
        grid.operator(PARALLAX_OT_go_to_frame.bl_idname, text=f"{frame}: {px:.1f} px").frame = frame
    for key, text in (("flagged", "Check frames"), ("down_weighted", "Down-weighted frames")):
        frames = list(summary[key])
        if frames:
            draw_text(box, context, f"{text}: {frame_spans(frames)}", icon="ERROR", boxed=True)


class PARALLAX_OT_go_to_frame(bpy.types.Operator):
    """Jump to this frame"""

    bl_idname = "parallax.go_to_frame"
    bl_label = "Go to Frame"
    bl_options = {"INTERNAL"}

    frame: IntProperty()

    def execute(self, context):
        context.scene.frame_set(self.frame)
        return {"FINISHED"}

