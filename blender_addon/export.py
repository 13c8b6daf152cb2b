"""File > Export > Parallax (and the panel's Export button): a bundle to COLMAP, nerfstudio, Nuke .chan, USD,
a PLY cloud or plate-resolution depth.

The export runs `python -m engine export` in the engine's Python (it needs OpenCV and OpenEXR, which Blender's
Python lacks) and waits for it: exports take seconds to a minute. It writes a new folder BUNDLE_FORMAT inside the
chosen folder; the engine replaces only an earlier export there and refuses anything else.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from . import preferences, reconstruct
from .engine_link import EXPORT_FORMATS as FORMATS
from .engine_process import engine_root
from .errors import EngineUnavailable


def default_bundle(context) -> str:
    """The bundle Reconstruct wrote for the scene's clip, when there is one."""
    clip = reconstruct.active_clip(context)
    if clip is None:
        return ""
    folder = reconstruct.bundle_dir(clip)
    return str(folder) if (folder / "scene.json").is_file() else ""


def run_export(python: str, bundle: Path, export_format: str, out: Path, clip: str = "") -> tuple[bool, str]:
    """Run the engine's export; (succeeded, the engine's last words: its summary, or the error and its fix)."""
    argv = [python, "-m", "engine", "export", str(bundle), "--format", export_format, "--out", str(out)]
    if clip:
        argv += ["--clip", clip]
    try:
        proc = subprocess.run(argv, cwd=engine_root(), capture_output=True, text=True)
    except OSError as exc:
        return False, f"could not start the engine's Python {python} ({exc})"
    if proc.returncode == 0:
        return True, proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else f"wrote {out}"
    lines = [line.strip() for line in proc.stderr.strip().splitlines()]
    start = next((i for i, line in enumerate(lines) if line.startswith("error:")), max(len(lines) - 3, 0))
    return False, " ".join(lines[start:]) or f"the engine's export failed (exit code {proc.returncode})"


class EXPORT_SCENE_OT_parallax(bpy.types.Operator):
    """Export a Parallax bundle for other tools into a new folder BUNDLE_FORMAT in the chosen folder"""

    bl_idname = "export_scene.parallax"
    bl_label = "Export Parallax Bundle"
    bl_options = {"REGISTER"}

    directory: StringProperty(name="Folder", subtype="DIR_PATH", description="Where the export's folder goes")
    bundle: StringProperty(name="Bundle", subtype="DIR_PATH",
                           description="The bundle to export (default: the one Reconstruct made for this clip)")
    export_format: EnumProperty(name="Format", items=[(name, name, text) for name, (_, text) in FORMATS.items()])
    clip_path: StringProperty(name="Clip", subtype="FILE_PATH", default="",
                              description="The footage, if not at the bundle's recorded path")

    def invoke(self, context, event):
        if not self.bundle:
            self.bundle = default_bundle(context)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        bundle = Path(bpy.path.abspath(self.bundle))
        if not (bundle / "scene.json").is_file():
            self.report({"ERROR"}, f"{bundle} is not a Parallax bundle (no scene.json): choose the bundle folder")
            return {"CANCELLED"}
        try:
            python = preferences.engine_python(context)
        except EngineUnavailable as exc:
            self.report({"ERROR"}, f"{exc.problem} ({exc.fix})")
            return {"CANCELLED"}
        out = Path(bpy.path.abspath(self.directory)) / f"{bundle.name}_{self.export_format}"
        ok, message = run_export(python, bundle, self.export_format, out, bpy.path.abspath(self.clip_path))
        self.report({"INFO"} if ok else {"ERROR"}, f"{message} -> {out}" if ok else message)
        return {"FINISHED"} if ok else {"CANCELLED"}


def menu_func_export(self, context):
    self.layout.operator(EXPORT_SCENE_OT_parallax.bl_idname, text="Parallax (COLMAP, nerfstudio, Nuke, USD, PLY)")


classes = (EXPORT_SCENE_OT_parallax,)
