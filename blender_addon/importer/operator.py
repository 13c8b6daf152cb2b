"""File > Import > Parallax Bundle: import a bundle made elsewhere (for example on a GPU server)."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ImportHelper

from ..errors import EngineError
from .bundle_import import import_bundle, import_notes, options_from_settings
from .settings import ImportSettings


class IMPORT_SCENE_OT_parallax_bundle(bpy.types.Operator, ImportHelper, ImportSettings):
    """Import a Parallax reconstruction bundle: camera, point clouds and depth maps"""

    bl_idname = "import_scene.parallax_bundle"
    bl_label = "Import Parallax Bundle"
    bl_options = {"REGISTER", "UNDO", "PRESET"}

    filename_ext = ".json"
    filter_glob: StringProperty(default="scene.json", options={"HIDDEN"})
    clip_path: StringProperty(name="Clip", description="The footage, if not at the bundle's recorded path",
                              subtype="FILE_PATH", default="")

    def execute(self, context):
        path = Path(bpy.path.abspath(self.filepath))
        options = options_from_settings(self, bpy.path.abspath(self.clip_path) or None)
        try:
            collection = import_bundle(context, path if path.is_dir() else path.parent, options)
        except EngineError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, "; ".join([f"Imported {collection.name}", *import_notes(collection)]))
        return {"FINISHED"}


def menu_func_import(self, context):
    self.layout.operator(IMPORT_SCENE_OT_parallax_bundle.bl_idname, text="Parallax Bundle (scene.json)")
