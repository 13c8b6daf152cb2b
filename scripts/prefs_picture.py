"""Draw docs/images/preferences_wrapped.png: the add-on's preferences in Blender's Preferences editor (Add-ons,
the extension's entry expanded), their long texts wrapped to its width. Runs inside Blender with a window (not
headless bpy, which draws no UI); scripts/panel_picture.sh runs it in Blender 4.3 under Xvfb and says how.

    PARALLAX_DATA_DIR=LONG/FOLDER blender --factory-startup --python scripts/prefs_picture.py -- ADDON.zip OUT.png

Installs the extension zip (build_addon.py) into the user folders (set BLENDER_USER_RESOURCES to an empty folder)
and turns the large area into the Preferences editor; the engine environment is looked for in PARALLAX_DATA_DIR
(a folder with none: its problem, fix and path are what wraps). Anything that fails is printed and Blender exits
with status 1.
"""

import os
import subprocess
import sys
import traceback
from pathlib import Path

import addon_utils
import bpy

EXTENSION = "bl_ext.user_default.parallax"
ZIP, OUT = sys.argv[sys.argv.index("--") + 1:][:2]


def largest_area(window) -> bpy.types.Area:
    return max(window.screen.areas, key=lambda area: area.width * area.height)


def setup() -> None:
    window = bpy.context.window_manager.windows[0]
    with bpy.context.temp_override(window=window, screen=window.screen):
        assert bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default",
                                                        enable_on_install=True) == {"FINISHED"}
        addon_utils.modules(refresh=False)
        addon_utils.module_bl_info(addon_utils.addons_fake_modules[EXTENSION])["show_expanded"] = True
        bpy.context.preferences.active_section = "ADDONS"
        bpy.context.window_manager.addon_search = "Parallax"
        largest_area(window).type = "PREFERENCES"


def shoot() -> None:
    window = bpy.context.window_manager.windows[0]
    region = next(region for region in largest_area(window).regions if region.type == "WINDOW")
    print(f"prefs_picture: Preferences region {region.width}x{region.height} at UI scale "
          f"{bpy.context.preferences.system.ui_scale:.4f}")
    # Blender's own screenshot reads back black under Xvfb's software OpenGL: grab the X screen instead.
    full = Path(OUT).with_name(Path(OUT).stem + "_window.xwd")
    subprocess.run(["xwd", "-root", "-silent", "-out", str(full)], check=True)
    top = window.height - region.y - region.height  # X counts rows from the top, Blender from the bottom
    subprocess.run(["magick", str(full), "-crop", f"{region.width}x{region.height}+{region.x}+{top}", "+repage",
                    "-strip", OUT], check=True)
    print(f"prefs_picture: wrote {OUT} and {full}")
    bpy.ops.wm.quit_blender()


def steps():
    """One timer for both steps (a timer returning seconds runs again after them): setup, then 2 s later shoot."""
    try:
        if not DONE:
            setup()
            DONE.append("setup")
            return 2.0
        shoot()
    except Exception:
        print(traceback.format_exc(), flush=True)
        os._exit(1)  # Blender would go on without a window to show
    return None


DONE: list[str] = []
bpy.context.preferences.view.show_splash = False
bpy.app.timers.register(steps, first_interval=1.0)
