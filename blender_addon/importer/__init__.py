"""Bundle import for the Parallax add-on: camera, per-frame points and depth into one collection.

The add-on registers `classes` and appends `menu_func_import` to TOPBAR_MT_file_import; after an engine run it
calls `import_bundle(context, bundle_path, options)`.
"""

from .bundle_import import ImportOptions, first_scene_frame, import_bundle, import_notes, options_from_settings
from .operator import IMPORT_SCENE_OT_parallax_bundle, menu_func_import
from .quality import PARALLAX_OT_go_to_frame, draw_quality
from .scene_setup import classes as setup_classes
from .scene_setup import draw_setup
from .shadow_catcher import classes as shadow_classes

classes = (IMPORT_SCENE_OT_parallax_bundle, PARALLAX_OT_go_to_frame, *setup_classes, *shadow_classes)

__all__ = ["ImportOptions", "first_scene_frame", "import_bundle", "import_notes", "options_from_settings", "classes",
           "draw_quality", "draw_setup", "menu_func_import"]
