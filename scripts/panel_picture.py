"""Draw docs/images/panel_quality.png: the Parallax panel in a real Blender UI after an import of a bundle that
has a solve quality (average, grade, the worst frames). Runs inside Blender with a window (not headless bpy,
which draws no UI); scripts/panel_picture.sh runs it in Blender 4.3 under Xvfb and says how.

    blender --factory-startup --python scripts/panel_picture.py -- ADDON.zip BUNDLE CLIP LOG OUT.png

Installs the extension zip (build_addon.py) into the user folders (set BLENDER_USER_RESOURCES to an empty
folder), loads CLIP as the scene's active clip, imports BUNDLE with the add-on's importer and the panel's
settings (the call the Reconstruct operator makes when the engine has written a bundle) and sets the panel's
message and log as Reconstruct does (LOG: the engine's info lines, one a line; the import's notes as warnings),
turns the large area into a Movie Clip Editor with its sidebar on the Parallax tab, and saves that sidebar as
OUT.png. Anything that fails is printed and Blender exits with status 1.
"""

import importlib
import os
import subprocess
import sys
import traceback
from pathlib import Path

import bpy

EXTENSION = "bl_ext.user_default.parallax"
ZIP, BUNDLE, CLIP, LOG, OUT = sys.argv[sys.argv.index("--") + 1:][:5]
TABS = 22  # the width of the sidebar's tab column, pixels


def window_context():
    window = bpy.context.window_manager.windows[0]
    return window, bpy.context.temp_override(window=window, screen=window.screen)


def clip_editor(window) -> bpy.types.Area:
    return max(window.screen.areas, key=lambda area: area.width * area.height)


def setup() -> None:
    window, override = window_context()
    with override:
        assert bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default",
                                                        enable_on_install=True) == {"FINISHED"}
        importer = importlib.import_module(EXTENSION + ".importer")
        scene = bpy.context.scene
        clip = bpy.data.movieclips.load(CLIP)
        scene.active_clip = clip
        collection = importer.import_bundle(bpy.context, BUNDLE, importer.options_from_settings(scene.parallax))
        print(f"panel_picture: imported {collection.name}; notes: {importer.import_notes(collection)}")
        reconstruct = importlib.import_module(EXTENSION + ".reconstruct")
        log = [("info", line) for line in Path(LOG).read_text().splitlines()]
        log += [("warning", note) for note in importer.import_notes(collection)]
        wm = bpy.context.window_manager
        wm.parallax_message = reconstruct.result_message(collection, Path(BUNDLE))
        wm.parallax_log = reconstruct.log_text(log)
        area = clip_editor(window)
        area.type = "CLIP_EDITOR"
        space = area.spaces.active
        space.clip = clip
        space.show_region_ui = True
    bpy.app.timers.register(show_tab, first_interval=1.0)


def sidebar(area: bpy.types.Area) -> bpy.types.Region:
    return next(region for region in area.regions if region.type == "UI")


def show_tab() -> None:
    window, _ = window_context()
    region = sidebar(clip_editor(window))
    region.active_panel_category = "Parallax"
    region.tag_redraw()
    bpy.app.timers.register(shoot, first_interval=2.0)


def shoot() -> None:
    window, _ = window_context()
    region = sidebar(clip_editor(window))
    print(f"panel_picture: sidebar tab {region.active_panel_category!r}, {region.width}x{region.height} at "
          f"({region.x}, {region.y}) of a {window.width}x{window.height} window")
    # Blender's own screenshot reads back black under Xvfb's software OpenGL: grab the X screen instead.
    full = Path(OUT).with_name(Path(OUT).stem + "_window.xwd")
    subprocess.run(["xwd", "-root", "-silent", "-out", str(full)], check=True)
    top = window.height - region.y - region.height  # X counts rows from the top, Blender from the bottom
    crop = ["-crop", f"{region.width}x{region.height}+{region.x}+{top}", "+repage"]
    # Down to the panels' last row: the bounding box of what differs from the empty sidebar, left of the tabs.
    box = subprocess.run(["magick", str(full), *crop, "-crop", f"{region.width - 2 * TABS}x{region.height - 4}+0+0",
                          "+repage", "-fuzz", "3%", "-format", "%@", "info:"], capture_output=True, text=True,
                         check=True).stdout
    height = min(region.height, sum(int(v) for v in box.replace("x", "+").split("+")[1::2]) + 8)  # H + Y
    subprocess.run(["magick", str(full), *crop, "-crop", f"{region.width}x{height}+0+0", "+repage", "-strip", OUT],
                   check=True)
    print(f"panel_picture: wrote {OUT} ({region.width}x{height}) and {full}")
    bpy.ops.wm.quit_blender()


def guarded(step):
    def run():
        try:
            step()
        except Exception:
            traceback.print_exc()
            sys.stdout.flush()
            os._exit(1)
    return run


setup, show_tab, shoot = guarded(setup), guarded(show_tab), guarded(shoot)
bpy.context.preferences.view.show_splash = False
bpy.app.timers.register(setup, first_interval=1.0)
