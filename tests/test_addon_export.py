"""File > Export > Parallax in the installed extension (headless bpy 5.0.1): the engine's export run from Blender,
its summary or its error reported, and the menu entry registered."""

import json

from tests.addon_session import INSTALL, run_bpy
from tests.synthetic_bundle import write_synthetic_bundle

EXPORT = INSTALL + """
bundle, out = sys.argv[2], sys.argv[3]
def export(**kw):
    try:
        status = bpy.ops.export_scene.parallax(bundle=bundle, directory=out, **kw)
        return sorted(status)
    except RuntimeError as exc:  # an operator reporting an error raises in background mode
        return ["RAISED: " + str(exc)]
from bl_ext.user_default.parallax import export as export_module
result["menu"] = export_module.menu_func_export in bpy.types.TOPBAR_MT_file_export._dyn_ui_initialize()
result["chan"] = export(export_format="chan")
result["again"] = export(export_format="chan")  # an earlier export is replaced
open(os.path.join(out, "notes.txt"), "w").write("mine")
os.makedirs(os.path.join(out, "bundle_ply"))
open(os.path.join(out, "bundle_ply", "notes.txt"), "w").write("mine")
result["foreign"] = export(export_format="ply")  # a folder the export did not write is refused
bundle = out  # not a bundle
result["not_a_bundle"] = export(export_format="chan")
report()
"""


def test_export_from_blender_runs_the_engine(addon_zip, tmp_path):
    bundle, recon = write_synthetic_bundle(tmp_path / "bundle")
    out = tmp_path / "exports"
    out.mkdir()
    result = run_bpy(EXPORT, [addon_zip, bundle, out], tmp_path / "profile")
    assert result["menu"] is True
    assert result["chan"] == ["FINISHED"] and result["again"] == ["FINISHED"]
    lines = (out / "bundle_chan" / "camera.chan").read_text().splitlines()
    assert len(lines) == len(recon.frames)
    assert json.loads((out / "bundle_chan" / "parallax_export.json").read_text())["export"] == "chan"
    assert result["foreign"][0].startswith("RAISED") and "not empty" in result["foreign"][0]
    assert (out / "bundle_ply" / "notes.txt").read_text() == "mine"
    assert result["not_a_bundle"][0].startswith("RAISED") and "not a Parallax bundle" in result["not_a_bundle"][0]
