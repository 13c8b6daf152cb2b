"""What a reconstruction uses (per scene) and how the running one is doing (per window manager)."""

import bpy

from .engine_link import AlignOptions, ReconstructOptions, size_text
from .importer.settings import ImportSettings

INT_MAX = 2**31 - 1  # the largest value of an IntProperty (a C int)

# Quality presets: (label, window stride in frames, diffusion steps). A smaller stride means more overlapping
# windows (slower, steadier). Presets leave the processing size to the engine, which matches the clip's aspect
# at Geo4D's training area (320x512); a fixed size would stretch clips of another aspect.
PRESETS = {
    "FAST": ("Fast", 8, 5),
    "STANDARD": ("Standard", 4, 5),
    "FINE": ("Fine", 2, 5),
}


def quality(settings) -> tuple[int, int, tuple[int, int] | None]:
    """(stride, steps, (H, W) or None for the engine's aspect-aware size) for the settings' preset, or its own
    values for CUSTOM."""
    if settings.preset != "CUSTOM":
        _, stride, steps = PRESETS[settings.preset]
        # The presets' strides are for Geo4D's 16-frame windows; another model gets its own default (None).
        return (stride if settings.model == "geo4d" else None), steps, None
    size = (settings.size_h, settings.size_w) if settings.use_custom_size else None
    return settings.stride, settings.steps, size


def from_option(cls, name: str) -> dict:
    """A bpy property's description, default and range or items from field `name` of the engine's options
    dataclass `cls` (engine/options.py), so the add-on's setting says and allows what the flag does."""
    field = cls.__dataclass_fields__[name]
    meta = field.metadata
    help_text = meta["help"].replace("%%", "%")  # argparse's escape
    settings = {"description": help_text[:1].upper() + help_text[1:], "default": field.default}
    if meta["choices"]:
        settings["items"] = [(choice, choice, "") for choice in meta["choices"]]
    if meta["low"] is not None:
        settings["min"] = meta["low"]
    if meta["high"] is not None:
        settings["max"] = min(meta["high"], INT_MAX) if isinstance(field.default, int) else meta["high"]
    return settings


class ParallaxSettings(ImportSettings, bpy.types.PropertyGroup):
    model: bpy.props.EnumProperty(
        name="Model",
        items=[("geo4d", "Geo4D", "The Geo4D video-diffusion geometry model, from the preferences' model folder"),
               ("geometrycrafter", "GeometryCrafter", "GeometryCrafter's per-frame point maps (research-only "
                "licence), from the preferences' GeometryCrafter folder")],
        default="geo4d")
    variant: bpy.props.EnumProperty(
        name="Variant",
        items=[("diff", "Diffusion", "GeometryCrafter's diffusion sampling (the steps below)"),
               ("determ", "Deterministic", "GeometryCrafter's one-step variant: faster")],
        default="diff")
    preset: bpy.props.EnumProperty(
        name="Quality",
        items=[(key, label, f"window stride {stride}, {steps} steps, processing size fitted to the clip")
               for key, (label, stride, steps) in PRESETS.items()]
        + [("CUSTOM", "Custom", "Set stride, steps and processing size yourself")],
        default="STANDARD")
    stride: bpy.props.IntProperty(name="Stride", default=4, min=1, max=15,
                                  description="Frames between the starts of consecutive 16-frame windows")
    steps: bpy.props.IntProperty(name="Steps", default=5, min=1, max=50, description="Diffusion (DDIM) steps")
    use_custom_size: bpy.props.BoolProperty(
        name="Custom Size", default=False,
        description="Process at Height x Width instead of the size the engine fits to the clip's aspect")
    size_h: bpy.props.IntProperty(name="Height", default=320, min=32, max=1024,
                                  description=f"Processing height in pixels, {size_text()}")
    size_w: bpy.props.IntProperty(name="Width", default=512, min=32, max=1024,
                                  description=f"Processing width in pixels, {size_text()}")
    zoom_shot: bpy.props.BoolProperty(
        name="Zoom Shot", default=False,
        description="The focal length changes during the shot: solve one focal length per frame (keyframed on "
                    "the camera's lens). Off, the engine still does so when the windows' focal estimates change")
    tripod: bpy.props.EnumProperty(
        name="Tripod",
        description="Whether the camera only turns about a fixed pivot (a pan or tilt on a tripod): its lens then "
                    "follows an arc about the pivot, the rotations solved per frame",
        items=[("AUTO", "Detect", "A tripod shot when that explains the solved camera track (to 0.5 % of the "
                "scene's depth)"),
               ("ON", "Tripod Shot", "The camera only turns about a fixed pivot"),
               ("OFF", "Free Camera", "The camera moves freely, however little it travels")],
        default="AUTO")
    use_clip_camera: bpy.props.BoolProperty(
        name="Use Clip Camera", default=False,
        description="Send the clip's Camera settings (Movie Clip > Track > Camera: sensor width, focal length, "
                    "optical center, lens distortion) to the engine: the solve uses that focal length instead of "
                    "finding one, on frames undistorted with that lens; the compositor distorts the CG to match")
    focal_mode: bpy.props.EnumProperty(
        name="Focal Length",
        items=[("FIXED", "Fixed", "The clip camera's focal length is exact: the solve keeps it"),
               ("REFINE", "Refine", "Start from the clip camera's focal length; the solve may move it as far as "
                "the footage clearly says (about 5 %)")],
        default="FIXED")
    use_clip_range: bpy.props.BoolProperty(name="Whole Clip", default=True)
    frame_start: bpy.props.IntProperty(name="Start", default=1, description="First frame to reconstruct (scene frames)")
    frame_end: bpy.props.IntProperty(name="End", default=100, description="Last frame to reconstruct (scene frames)")
    point_stride: bpy.props.IntProperty(name="Point Density", default=2, min=1, max=16,
                                        description="Keep every n-th pixel in x and y as a point")
    # Advanced (a closed sub-panel): the engine's options whose defaults suit most shots.
    seed: bpy.props.IntProperty(name="Seed", **from_option(ReconstructOptions, "seed"))
    window_storage: bpy.props.EnumProperty(name="Keep Windows", **from_option(ReconstructOptions, "window_storage"))
    smoothness: bpy.props.FloatProperty(name="Smoothness", **from_option(AlignOptions, "smoothness"))
    # The import settings (camera, points, depth, floor, accumulate, threshold, radius) come from ImportSettings.


def register_runtime_props():
    wm = bpy.types.WindowManager
    wm.parallax_running = bpy.props.BoolProperty(options={"SKIP_SAVE"})
    wm.parallax_progress = bpy.props.FloatProperty(min=0.0, max=1.0, options={"SKIP_SAVE"})
    wm.parallax_stage = bpy.props.StringProperty(options={"SKIP_SAVE"})
    wm.parallax_message = bpy.props.StringProperty(options={"SKIP_SAVE"})
    wm.parallax_log = bpy.props.StringProperty(options={"SKIP_SAVE"})  # "level\tmessage" lines from the engine


def unregister_runtime_props():
    for name in ("parallax_running", "parallax_progress", "parallax_stage", "parallax_message", "parallax_log"):
        delattr(bpy.types.WindowManager, name)


classes = (ParallaxSettings,)
