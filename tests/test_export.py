"""`python -m engine export`: each format read back with its own reader (pycolmap, pxr, transforms.json against
nerfstudio's documented fields), the cameras checked against the synthetic scene's ground truth to 1e-5 and the
points by reprojection; the merged cloud's motion test on a scene with a moving ball."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cli import main
from engine.export.cloud import merge_static_cloud
from engine.export.options import CloudOptions
from engine.export.shot import load_shot
from engine.formats.bundle import write_bundle
from engine.formats.ply import read_ply
from tests.synthetic_bundle import FLOOR_Y, synthetic_reconstruction

SCALE = 2  # the clip is twice the size of the depth maps
TINY_VOXEL = "1e-5"  # every frame point stays its own point: reprojection is exact
BALL_RADIUS = 0.5


def _ball_centre(s: float) -> np.ndarray:
    """World centre of the moving ball at shot time s in [0, 1]: it crosses the view, clear of floor and wall,
    leaving its place within two frames while the cameras still see that place (a place no other frame sees
    free is no evidence of motion: the procedural test below measures what that costs)."""
    return np.array([-2.0 + 8.0 * s, 0.0, 6.0])


def _add_moving_ball(recon) -> None:
    """Render a red ball moving through the scene into recon's depth, colours and confidence (in place)."""
    h, w = recon.image_size
    v, u = np.mgrid[0:h, 0:w]
    pixels = np.stack([u + 0.5, v + 0.5, np.ones_like(u, float)], axis=-1)
    for i, s in enumerate(np.linspace(0, 1, len(recon.frames))):
        d = pixels @ np.linalg.inv(recon.K[i]).T @ recon.camera_to_world[i, :3, :3].T  # planar-depth rays
        oc = recon.camera_to_world[i, :3, 3] - _ball_centre(s)
        a, b, c = np.sum(d * d, -1), 2 * d @ oc, oc @ oc - BALL_RADIUS ** 2
        disc = b * b - 4 * a * c
        t = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
        hit = (t > 0) & np.isfinite(t) & ((recon.depth[i] == 0) | (t < recon.depth[i]))
        recon.depth[i][hit] = t[hit]
        recon.rgb[i][hit] = (220, 30, 30)
        recon.confidence[i][hit] = 1.0


def _bundle(tmp_path: Path, zoom: bool = True, ball: bool = False, **kwargs):
    """A synthetic bundle whose source clip is a PNG sequence at twice the maps' size; (path, recon)."""
    recon = synthetic_reconstruction(zoom=zoom, **kwargs)
    if ball:
        _add_moving_ball(recon)
    clip = tmp_path / "clip"
    clip.mkdir()
    for i, rgb in enumerate(recon.rgb):
        big = cv2.resize(rgb, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(clip / f"plate.{1001 + i}.png"), big[..., ::-1])
    h, w = recon.image_size
    recon.source_clip = str(clip)
    recon.metadata["clip_size"] = [SCALE * h, SCALE * w]
    return write_bundle(recon, tmp_path / "bundle"), recon


def _export(bundle: Path, fmt: str, out: Path, *extra: str) -> Path:
    assert main(["export", str(bundle), "--format", fmt, "--out", str(out), *extra]) == 0
    return out


def _plate_K(recon) -> np.ndarray:
    return np.diag([SCALE, SCALE, 1.0]) @ recon.K


def _check_against_ground_truth(recon, i: int, xyz: np.ndarray, xy: np.ndarray) -> None:
    """Points xyz [P, 3] (engine world) observed at plate pixels xy [P, 2] of frame i: the pixels are map pixel
    centres and the points lie at the ground-truth depth there."""
    u, v = xy[:, 0] / SCALE - 0.5, xy[:, 1] / SCALE - 0.5
    np.testing.assert_allclose(u, np.round(u), atol=1e-3)
    np.testing.assert_allclose(v, np.round(v), atol=1e-3)
    w2c = np.linalg.inv(recon.camera_to_world[i])
    z = xyz @ w2c[2, :3] + w2c[2, 3]
    np.testing.assert_allclose(z, recon.depth[i, np.round(v).astype(int), np.round(u).astype(int)], rtol=1e-5)


@pytest.mark.parametrize("zoom", [True, False])
@pytest.mark.parametrize("encoding", ["binary", "text"])
def test_colmap_model_reads_back_with_pycolmap(tmp_path, zoom, encoding):
    pycolmap = pytest.importorskip("pycolmap")
    bundle, recon = _bundle(tmp_path, zoom=zoom)
    out = _export(bundle, "colmap", tmp_path / "colmap", "--voxel-size", TINY_VOXEL)
    model = pycolmap.Reconstruction()
    getattr(model, f"read_{encoding}")(str(out / "sparse" / "0"))
    n, (h, w) = len(recon.frames), recon.image_size
    assert model.num_images() == n
    assert model.num_cameras() == (n if zoom else 1)
    K = _plate_K(recon)
    for image in model.images.values():
        i = int(Path(image.name).stem)
        camera = model.cameras[image.camera_id]
        assert camera.model == pycolmap.CameraModelId.PINHOLE
        assert (camera.width, camera.height) == (SCALE * w, SCALE * h)
        np.testing.assert_allclose(camera.calibration_matrix(), K[i], rtol=1e-5)
        np.testing.assert_allclose(image.cam_from_world().matrix(), np.linalg.inv(recon.camera_to_world[i])[:3],
                                   atol=1e-5)
        plate = cv2.imread(str(out / "images" / image.name))[..., ::-1]
        np.testing.assert_array_equal(plate[::SCALE, ::SCALE], recon.rgb[i])

    errors, checked = [], 0
    for point_id, point in model.points3D.items():
        assert len(point.track.elements) >= 1
        for element in point.track.elements:
            image = model.images[element.image_id]
            assert image.points2D[element.point2D_idx].point3D_id == point_id
            xy = image.points2D[element.point2D_idx].xy
            errors.append(np.linalg.norm(image.project_point(point.xyz) - xy))
            if checked < 2000:
                _check_against_ground_truth(recon, int(Path(image.name).stem), point.xyz[None], xy[None])
                checked += 1
    assert max(errors) < 1e-3  # pixels
    # Tiny voxels: about every confident frame point (90 %) is a point of the model.
    assert model.num_points3D() > 0.85 * sum((recon.depth[i] > 0).sum() for i in range(n))


def test_colmap_default_voxel_merges_tracks_and_states_their_error(tmp_path):
    pycolmap = pytest.importorskip("pycolmap")
    bundle, recon = _bundle(tmp_path)
    out = _export(bundle, "colmap", tmp_path / "colmap")
    model = pycolmap.Reconstruction(str(out / "sparse" / "0"))
    written = {k: p.error for k, p in model.points3D.items()}
    assert model.compute_mean_track_length() > 3  # a voxel gathers a point from several frames
    model.update_point_3d_errors()  # COLMAP's own reprojection errors of the written tracks
    recomputed = {k: p.error for k, p in model.points3D.items()}
    np.testing.assert_allclose([written[k] for k in written], [recomputed[k] for k in written], atol=1e-6)
    assert 0 < model.compute_mean_reprojection_error() < 3.0  # pixels: within the voxel's footprint


def _gl_to_opencv(c2w_gl: np.ndarray) -> np.ndarray:
    """A Y-up world, OpenGL camera pose -> the engine's OpenCV world and camera (the inverse of export/axes.py,
    written out here from the conventions rather than imported)."""
    flip = np.diag([1.0, -1.0, -1.0, 1.0])
    return flip @ c2w_gl @ flip


@pytest.mark.parametrize("zoom", [True, False])
def test_nerfstudio_transforms_follow_the_documented_fields_and_reproject(tmp_path, zoom):
    bundle, recon = _bundle(tmp_path, zoom=zoom)
    out = _export(bundle, "nerfstudio", tmp_path / "ns", "--voxel-size", TINY_VOXEL)
    meta = json.loads((out / "transforms.json").read_text())
    n, (h, w) = len(recon.frames), recon.image_size
    assert meta["camera_model"] == "OPENCV" and (meta["w"], meta["h"]) == (SCALE * w, SCALE * h)
    assert len(meta["frames"]) == n
    K = _plate_K(recon)
    points = read_ply(out / meta["ply_file_path"])
    xyz_gl = np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float64)
    for i, frame in enumerate(meta["frames"]):
        intrinsics = frame if zoom else meta  # per frame for a zoom, else shared at the top
        assert ("fl_x" in frame) == zoom
        np.testing.assert_allclose([intrinsics[k] for k in ("fl_x", "fl_y", "cx", "cy")],
                                   K[i][[0, 1, 0, 1], [0, 1, 2, 2]], rtol=1e-5)
        image = cv2.imread(str(out / frame["file_path"]))
        assert image.shape == (SCALE * h, SCALE * w, 3)
        c2w = np.array(frame["transform_matrix"])
        np.testing.assert_allclose(_gl_to_opencv(c2w), recon.camera_to_world[i], atol=1e-5)
        # Project the cloud as nerfstudio's OpenGL cameras do: looking down -z, y up.
        cam = (xyz_gl - c2w[:3, 3]) @ c2w[:3, :3]
        front = cam[:, 2] < 0
        x = intrinsics["fl_x"] * cam[front, 0] / -cam[front, 2] + intrinsics["cx"]
        y = -intrinsics["fl_y"] * cam[front, 1] / -cam[front, 2] + intrinsics["cy"]
        inside = (x >= 0) & (x < SCALE * w) & (y >= 0) & (y < SCALE * h)
        z = -cam[front][inside, 2]
        truth = recon.depth[i, (y[inside] / SCALE).astype(int), (x[inside] / SCALE).astype(int)]
        visible = np.abs(z - truth) < 0.01 * truth  # the points this frame sees (the rest are hidden)
        assert visible.mean() > 0.3
        if i == 0:  # frame 0's own points land on their pixel centres at the true depth
            own = np.abs(x[inside] / SCALE % 1 - 0.5) < 1e-3
            assert own.sum() > 0.85 * (recon.depth[0] > 0).sum()


def test_usd_stage_reads_back_with_pxr(tmp_path):
    pytest.importorskip("pxr")
    from pxr import Gf, Usd, UsdGeom

    bundle, recon = _bundle(tmp_path)
    out = _export(bundle, "usd", tmp_path / "usd", "--voxel-size", TINY_VOXEL)
    stage = Usd.Stage.Open(str(out / "shot.usdc"))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
    assert stage.GetTimeCodesPerSecond() == pytest.approx(recon.fps)
    assert stage.GetDefaultPrim().GetPath() == "/Shot"
    camera = UsdGeom.Camera(stage.GetPrimAtPath("/Shot/Camera"))
    points = UsdGeom.Points(stage.GetPrimAtPath("/Shot/Points"))
    xyz_gl = np.array(points.GetPointsAttr().Get(), np.float64)
    assert len(points.GetDisplayColorPrimvar().Get()) == len(xyz_gl)
    assert len(UsdGeom.PrimvarsAPI(points).GetPrimvar("confidence").Get()) == len(xyz_gl)
    h, w = SCALE * recon.image_size[0], SCALE * recon.image_size[1]
    K = _plate_K(recon)
    for i in range(len(recon.frames)):
        gf = camera.GetCamera(Usd.TimeCode(i + 1))  # scene frame = clip frame + 1
        c2w = np.array(gf.transform).T  # Gf matrices act on row vectors
        np.testing.assert_allclose(_gl_to_opencv(c2w), recon.camera_to_world[i], atol=1e-5)
        # USD's own projection: world -> NDC through the frustum, NDC -> plate pixels.
        frustum = gf.frustum
        view_proj = frustum.ComputeViewMatrix() * frustum.ComputeProjectionMatrix()
        sample = xyz_gl[:: max(1, len(xyz_gl) // 3000)]
        ndc = np.array([view_proj.Transform(Gf.Vec3d(*p)) for p in sample])
        usd_px = np.stack([(ndc[:, 0] + 1) / 2 * w, (1 - ndc[:, 1]) / 2 * h], axis=1)
        cam = (sample * [1, -1, -1] - recon.camera_to_world[i, :3, 3]) @ recon.camera_to_world[i, :3, :3]
        ours = (cam @ K[i].T)[:, :2] / cam[:, 2:]
        front = cam[:, 2] > 0
        np.testing.assert_allclose(usd_px[front], ours[front], atol=1e-3)  # pixels
        fx = gf.focalLength / gf.horizontalAperture * w
        assert fx == pytest.approx(K[i, 0, 0], rel=1e-5)
        assert gf.verticalAperture / gf.horizontalAperture == pytest.approx(h / w, rel=1e-6)


def test_ply_cloud_excludes_the_moving_ball_and_keeps_the_static_scene(tmp_path):
    bundle, recon = _bundle(tmp_path, ball=True, num_frames=16)
    shot = load_shot(bundle)
    cloud = merge_static_cloud(shot, CloudOptions(voxel_size=1e-5, confidence_quantile=0.0))
    times = np.linspace(0, 1, len(recon.frames))
    centres = np.array([_ball_centre(s) for s in times])
    frame_points = [read_ply(f.points_path) for f in shot.bundle.frames]
    on_ball = 0
    for i, pts in enumerate(frame_points):
        xyz = np.stack([pts["x"], pts["y"], pts["z"]], axis=1)
        on_ball += int((np.linalg.norm(xyz - centres[i], axis=1) < BALL_RADIUS + 1e-3).sum())
    distance = np.linalg.norm(cloud.xyz[:, None, :] - centres[None], axis=2).min(axis=1)
    print(f"ball points {on_ball}, dropped as moving {cloud.counts['confident'] - cloud.counts['static']}, "
          f"left near the ball's path {(distance < BALL_RADIUS * 1.05).sum()}")
    assert (distance < BALL_RADIUS * 1.05).sum() <= 0.05 * on_ball  # the ball is gone ...
    moving = cloud.counts["confident"] - cloud.counts["static"]
    assert moving <= 1.02 * on_ball  # ... and next to nothing of the static scene went with it

    out = _export(bundle, "ply", tmp_path / "ply")
    merged = read_ply(out / "points.ply")
    xyz = np.stack([merged["x"], merged["y"], merged["z"]], axis=1)
    assert (np.linalg.norm(xyz[:, None] - centres[None], axis=2).min(axis=1) < BALL_RADIUS * 1.05).mean() < 0.01
    assert np.all(merged["confidence"] > 0) and len(merged) > 500
    assert np.all(xyz[:, 1] < FLOOR_Y + 1e-3)  # nothing below the floor


@pytest.mark.parametrize("scene, min_precision, min_recall, max_flagged", [
    ("moving_objects", 0.9, 0.8, 1.0),
    ("static", 0.0, 0.0, 0.005),
    ("street", 0.0, 0.0, 0.03),
])
def test_motion_mattes_on_procedural_scenes_with_simulated_predictions(tmp_path, scene, min_precision, min_recall,
                                                                       max_flagged):
    """Ground-truth moving pixels against the exported mattes, through realistic simulated predictions and the
    alignment: precision and recall of moving pixels, and the fraction of pixels flagged on static scenes."""
    import OpenEXR

    from engine.alignment.align import AlignOptions, align
    from engine.synthetic.procedural import make_scene
    from engine.synthetic.simulate import Corruption, simulate_windows

    gt = make_scene(scene, 20, (72, 120), seed=0)
    recon = align(simulate_windows(gt, stride=4, corruption=Corruption.realistic(), seed=0), AlignOptions())
    out = _export(write_bundle(recon, tmp_path / "bundle"), "mattes", tmp_path / "mattes")
    flagged, tested = [], []
    for i in range(len(recon.frames)):
        with OpenEXR.File(str(out / "mattes" / f"{i:06d}.exr")) as f:
            channels = f.channels()
            flagged.append(channels["Y"].pixels > 0.5)
            tested.append(channels["A"].pixels > 0.5)
            assert np.all((channels["score"].pixels >= 0) & (channels["score"].pixels <= 1))
    flagged, tested = np.array(flagged), np.array(tested)
    truth = gt.dynamic & tested
    precision = (flagged & truth).sum() / max(flagged.sum(), 1)
    recall = (flagged & truth).sum() / max(truth.sum(), 1)
    share = flagged.sum() / tested.sum()
    print(f"{scene}: moving {truth.sum() / tested.sum():.3f} of the pixels with depth, flagged {share:.3f}, "
          f"precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= min_precision and recall >= min_recall and share <= max_flagged


def test_static_scene_has_no_moving_points(tmp_path):
    bundle, _ = _bundle(tmp_path)
    cloud = merge_static_cloud(load_shot(bundle), CloudOptions(voxel_size=1e-5, confidence_quantile=0.0))
    assert cloud.counts["static"] == cloud.counts["confident"]


def test_export_never_writes_over_foreign_files(tmp_path, capsys):
    bundle, _ = _bundle(tmp_path)
    foreign = tmp_path / "work"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["export", str(bundle), "--format", "chan", "--out", str(foreign)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]

    assert main(["export", str(bundle), "--format", "chan", "--out", str(bundle)]) == 2  # the bundle itself
    assert (bundle / "scene.json").is_file()
    assert main(["export", str(bundle), "--format", "chan", "--out", str(tmp_path)]) == 2  # holds the bundle
    assert (bundle / "scene.json").is_file()

    out = _export(bundle, "chan", tmp_path / "nuke")  # an earlier export is replaced ...
    _export(bundle, "ply", out)
    assert sorted(p.name for p in out.iterdir()) == ["parallax_export.json", "points.ply"]
    (out / "extra.txt").write_text("added by hand")  # ... unless someone added a file to it
    assert main(["export", str(bundle), "--format", "chan", "--out", str(out)]) == 2
    assert (out / "extra.txt").read_text() == "added by hand"


def test_missing_clip_is_one_clear_error(tmp_path, capsys):
    bundle, _ = _bundle(tmp_path)
    clip = tmp_path / "clip"
    clip.rename(tmp_path / "moved")
    assert main(["export", str(bundle), "--format", "colmap", "--out", str(tmp_path / "c")]) == 2
    assert "--clip" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    _export(bundle, "colmap", tmp_path / "c", "--clip", str(tmp_path / "moved"))
    assert len(list((tmp_path / "c" / "images").iterdir())) == 12


def test_export_needs_no_torch():
    code = ("import sys; from engine.commands import export; from engine.export import colmap, nerfstudio, chan, "
            "usd, ply; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_depth_export_at_plate_resolution_against_ground_truth(tmp_path):
    """The synthetic scene scales with its size (K follows the width): rendered at twice the size it is the
    ground truth at plate resolution, and its colours are the plate."""
    import OpenEXR

    recon = synthetic_reconstruction(num_frames=4)
    plate = synthetic_reconstruction(num_frames=4, size=(96, 128))
    clip = tmp_path / "clip"
    clip.mkdir()
    for i, rgb in enumerate(plate.rgb):
        cv2.imwrite(str(clip / f"plate.{i:04d}.png"), rgb[..., ::-1])
    recon.source_clip, recon.metadata["clip_size"] = str(clip), [96, 128]
    bundle = write_bundle(recon, tmp_path / "bundle")
    out = _export(bundle, "depth", tmp_path / "depth")
    for i in range(4):
        with OpenEXR.File(str(out / "depth" / f"{i:06d}.exr")) as f:
            depth = np.array(f.channels()["Z"].pixels)
            to_ndc = np.array(f.header()["worldToNDC"], np.float64)
        truth = plate.depth[i]
        nearest = cv2.resize(recon.depth[i], (128, 96), interpolation=cv2.INTER_NEAREST)
        both = (truth > 0) & (depth > 0) & (nearest > 0)
        ours, plain = (np.abs(d[both] - truth[both]) / truth[both] for d in (depth, nearest))
        print(f"frame {i}: Abs Rel guided {ours.mean():.4f}, nearest {plain.mean():.4f}")
        assert ours.mean() < 0.5 * plain.mean()
        assert ((depth > 0) != (truth > 0)).mean() < 0.01
        # The header camera is the plate's: a pixel's centre projects back onto itself.
        v, u = 40, 70
        cam = np.linalg.inv(plate.K[i]) @ [u + 0.5, v + 0.5, 1.0] * truth[v, u]
        world = plate.camera_to_world[i] @ [*cam, 1.0]
        clip_xyzw = world @ to_ndc
        np.testing.assert_allclose(clip_xyzw[:2] / clip_xyzw[3] * [128, 96], [u + 0.5, v + 0.5], atol=1e-3)
