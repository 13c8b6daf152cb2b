"""Compositing-ready depth EXRs: depth in channel Z (and Y for viewers), confidence, and the frame's camera in
OpenEXR's standard worldToCamera / worldToNDC header attributes; older files (depth in Y only) still read."""

import numpy as np
import OpenEXR

from engine.formats.bundle import read_bundle
from engine.formats.exr import read_depth_exr
from tests.synthetic_bundle import write_synthetic_bundle


def test_depth_channels_and_header_cameras_reproject_the_points(tmp_path):
    path, recon = write_synthetic_bundle(tmp_path / "bundle")
    bundle = read_bundle(path)
    h, w = recon.image_size
    for i in (0, 5, 11):
        with OpenEXR.File(str(bundle.frames[i].depth_path)) as f:
            channels = {name: np.array(c.pixels) for name, c in f.channels().items()}
            header = dict(f.header())
        assert sorted(channels) == ["Y", "Z", "confidence"]
        np.testing.assert_array_equal(channels["Z"], recon.depth[i])
        np.testing.assert_array_equal(channels["Y"], recon.depth[i])
        np.testing.assert_array_equal(channels["confidence"], recon.confidence[i])

        pts = bundle.points(i)  # back-projected from frame i's pixel centres
        world = np.stack([pts["x"], pts["y"], pts["z"], np.ones(len(pts))], axis=1)
        clip = world @ header["worldToNDC"].astype(np.float64)  # Imath: row vectors
        ndc = clip[:, :3] / clip[:, 3:]
        u, v = ndc[:, 0] * w - 0.5, ndc[:, 1] * h - 0.5  # (0, 0) top-left corner, (1, 1) bottom-right
        np.testing.assert_allclose(u, np.round(u), atol=1e-3)
        np.testing.assert_allclose(v, np.round(v), atol=1e-3)
        depth = recon.depth[i, np.round(v).astype(int), np.round(u).astype(int)]
        np.testing.assert_allclose(1 / ndc[:, 2], depth, rtol=1e-5)

        camera = world @ header["worldToCamera"].astype(np.float64)  # x right, y up, z forward
        opencv = world @ np.linalg.inv(recon.camera_to_world[i]).T
        np.testing.assert_allclose(camera[:, :3], opencv[:, :3] * [1, -1, 1], atol=1e-4)
        np.testing.assert_allclose(camera[:, 2], depth, rtol=1e-5)


def test_older_depth_files_in_channel_y_still_read(tmp_path):
    depth = np.linspace(1, 9, 6 * 8, dtype=np.float32).reshape(6, 8)
    confidence = np.full_like(depth, 0.75)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"Y": depth, "confidence": confidence}) as f:
        f.write(str(tmp_path / "old.exr"))
    d, c = read_depth_exr(tmp_path / "old.exr")
    np.testing.assert_array_equal(d, depth)
    np.testing.assert_array_equal(c, confidence)
