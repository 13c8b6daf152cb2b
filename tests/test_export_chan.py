"""The Nuke .chan export against the camera the Blender add-on imports from the same bundle (bpy 5.0.1 headless).

The .chan line layout is `frame tx ty tz rx ry rz vertical_fov` (Y-up world, degrees, Nuke's ZXY rotation
order); Blender's Euler 'ZXY' is the same order (Z applied first), and Blender's world is Nuke's turned +90
degrees about x (Y up -> Z up)."""

import math

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
from mathutils import Euler, Matrix  # noqa: E402

from blender_addon.importer import ImportOptions, import_bundle  # noqa: E402
from engine.cli import main  # noqa: E402
from tests.synthetic_bundle import write_synthetic_bundle  # noqa: E402

Y_UP_TO_Z_UP = np.array(Matrix.Rotation(math.radians(90.0), 4, "X"))


@pytest.mark.parametrize("zoom", [True, False])
def test_chan_matches_the_imported_blender_camera(tmp_path, zoom):
    bundle, recon = write_synthetic_bundle(tmp_path / "bundle", zoom=zoom)
    assert main(["export", str(bundle), "--format", "chan", "--out", str(tmp_path / "nuke")]) == 0
    rows = [line.split() for line in (tmp_path / "nuke" / "camera.chan").read_text().splitlines()]
    assert all(len(row) == 8 for row in rows) and len(rows) == len(recon.frames)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    import_bundle(bpy.context, bundle, ImportOptions(points=False, depth=False))
    camera = scene.camera
    w, h = scene.render.resolution_x, scene.render.resolution_y
    for row in rows:
        frame, t, angles, vfov = int(row[0]), np.array(row[1:4], float), np.array(row[4:7], float), float(row[7])
        nuke = np.eye(4)
        nuke[:3, :3] = np.array(Euler(np.radians(angles).tolist(), "ZXY").to_matrix())
        nuke[:3, 3] = t
        scene.frame_set(frame)  # .chan frames are scene frames, as in Blender
        np.testing.assert_allclose(Y_UP_TO_Z_UP @ nuke, np.array(camera.matrix_world), atol=1e-5)
        sensor_height = camera.data.sensor_width * h / w  # horizontal sensor fit
        blender_vfov = math.degrees(2 * math.atan(sensor_height / (2 * camera.data.lens)))
        assert vfov == pytest.approx(blender_vfov, rel=1e-5)
