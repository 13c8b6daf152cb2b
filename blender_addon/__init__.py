"""Parallax for Blender: reconstruct the active Movie Clip with the Parallax engine and import the result.

The engine runs in its own Python process (engine_process.py); this package never imports torch.
"""

import atexit

import bpy

from . import engine_process, export, importer, panels, preferences, properties, reconstruct, weights

CLASSES = (properties.classes + preferences.classes + weights.classes + reconstruct.classes + panels.classes
           + importer.classes + export.classes)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.parallax = bpy.props.PointerProperty(type=properties.ParallaxSettings)
    properties.register_runtime_props()
    bpy.types.TOPBAR_MT_file_import.append(importer.menu_func_import)
    bpy.types.TOPBAR_MT_file_export.append(export.menu_func_export)
    bpy.app.handlers.load_pre.append(reconstruct.forget_job_on_load)
    atexit.register(engine_process.stop_engine)


def unregister():
    reconstruct.forget_job()
    weights.forget_job()
    engine_process.stop_engine()
    atexit.unregister(engine_process.stop_engine)
    bpy.app.handlers.load_pre.remove(reconstruct.forget_job_on_load)
    bpy.types.TOPBAR_MT_file_export.remove(export.menu_func_export)
    bpy.types.TOPBAR_MT_file_import.remove(importer.menu_func_import)
    properties.unregister_runtime_props()
    del bpy.types.Scene.parallax
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
