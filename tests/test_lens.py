"""Lens distortion (engine/clips/lens.py): Blender's four models against OpenCV's and Blender's own Movie
Distortion node, and frames undistorted to within a fraction of a pixel of the undistorted truth."""

import cv2
import numpy as np
import pytest

from engine.clips.lens import MODELS, Lens, distortion_uv_map, undistort_frames
from engine.errors import InputError

PLATE = (200, 320)  # H, W
FOCAL, PRINCIPAL = 300.0, (172.0, 93.0)  # off the centre
COEFFICIENTS = {"polynomial": (-0.12, 0.03, 0.01), "division": (-0.1, 0.02), "nuke": (-0.08, 0.02),
                "brown": (-0.1, 0.02, 0.005, 0.002, 0.006, 0.004)}


def _lens(model, coefficients=None):
    return Lens(model, coefficients or COEFFICIENTS[model], FOCAL, PRINCIPAL, PLATE)


def _grid(step=7.0):
    ys, xs = np.mgrid[0:PLATE[0]:step, 0:PLATE[1]:step]
    return np.stack([xs.ravel(), ys.ravel()], axis=-1).astype(np.float64)


def _opencv(lens):
    k = np.array([[FOCAL, 0, PRINCIPAL[0]], [0, FOCAL, PRINCIPAL[1]], [0, 0, 1]])
    c = lens.coefficients
    p1, p2 = (0.0, 0.0) if lens.model == "polynomial" else c[4:6]
    dist = np.array([c[0], c[1], p1, p2, c[2]])  # OpenCV's order: k1 k2 p1 p2 k3
    return k, dist


@pytest.mark.parametrize("model, coefficients", [("polynomial", None), ("brown", (-0.1, 0.02, 0.005, 0.0, 0.006,
                                                                                    0.004))])
def test_polynomial_and_brown_are_opencvs_model(model, coefficients):
    lens = _lens(model, coefficients)
    k, dist = _opencv(lens)
    points = _grid()
    normalised = np.c_[(points - PRINCIPAL) / FOCAL, np.ones(len(points))]
    expected, _ = cv2.projectPoints(normalised, np.zeros(3), np.zeros(3), k, dist)
    np.testing.assert_allclose(lens.distort(points), expected[:, 0], atol=1e-9)
    distorted = lens.distort(points)
    iterate = getattr(cv2, "undistortPointsIter", cv2.undistortPoints)  # OpenCV 5 folds it into undistortPoints
    back = iterate(distorted[:, None], k, dist, R=None, P=k,
                   criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12))
    np.testing.assert_allclose(lens.undistort(distorted), back[:, 0], atol=1e-6)


@pytest.mark.parametrize("model", list(MODELS))
def test_distort_and_undistort_are_inverse(model):
    lens = _lens(model)
    points = _grid()
    moved = np.linalg.norm(lens.distort(points) - points, axis=1).max()
    assert moved > 3.0  # a real distortion, pixels at the corners
    np.testing.assert_allclose(lens.undistort(lens.distort(points)), points, atol=1e-7)
    np.testing.assert_allclose(lens.distort(lens.undistort(points)), points, atol=1e-7)


def _blobs(centres, size, sigma=1.5):
    """float32[H, W] Gaussian blobs at centres [B, 2] (x, y; pixel centres at +0.5)."""
    v, u = np.mgrid[0:size[0], 0:size[1]]
    image = np.zeros(size, np.float32)
    for x, y in centres:
        image += np.exp(-((u + 0.5 - x) ** 2 + (v + 0.5 - y) ** 2) / (2 * sigma**2)).astype(np.float32)
    return image


def _centroids(image, centres, radius=5):
    found = []
    for x, y in centres:
        x0, y0 = int(x), int(y)
        v, u = np.mgrid[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1]
        patch = image[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1]
        found.append([(patch * (u + 0.5)).sum() / patch.sum(), (patch * (v + 0.5)).sum() / patch.sum()])
    return np.array(found)


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("scale", [1.0, 0.5])  # at the plate's size, and at half of it (the processing size)
def test_undistorted_frames_put_points_where_a_pinhole_would(model, scale):
    lens = _lens(model)
    ys, xs = np.mgrid[25:PLATE[0] - 20:30, 25:PLATE[1] - 20:35]
    truth = np.stack([xs.ravel(), ys.ravel()], axis=-1) + 0.3  # undistorted plate pixels
    size = (int(PLATE[0] * scale), int(PLATE[1] * scale))
    # The plate: each blob drawn where the lens puts it, at the frame's size.
    plate = _blobs(lens.distort(truth) * scale, size, sigma=2.0 * scale)
    frames = np.repeat(plate[None, ..., None], 2, axis=0)
    undistorted = undistort_frames(frames, lens)[1, ..., 0]
    error = np.linalg.norm(_centroids(undistorted, truth * scale) - truth * scale, axis=1)
    assert error.max() < 0.1, error.max()  # frame pixels


def test_bad_distortion_data_is_refused():
    with pytest.raises(InputError, match="takes 3 coefficients"):
        _lens("polynomial", (0.1, 0.2))
    with pytest.raises(InputError, match="no focal length"):
        Lens("division", (0.1, 0.0), 0.0, PRINCIPAL, PLATE)


@pytest.mark.parametrize("model", list(MODELS))
def test_the_uv_map_sends_each_plate_pixel_to_where_its_light_is_undistorted(model):
    """distortion_uv_map (the import's Map UV): each plate pixel centre's UV, back in plate pixels (v from the
    bottom) and through Lens.distort, is that pixel centre again; the lens survives scene.json's JSON."""
    lens = Lens.from_json(_lens(model).to_json())
    assert lens == _lens(model)
    uv = distortion_uv_map(lens).astype(np.float64)
    h, w = PLATE
    assert uv.shape == (h, w, 2)
    source = np.stack([uv[..., 0] * w, (1.0 - uv[..., 1]) * h], axis=-1)
    v, u = np.mgrid[0:h, 0:w]
    centres = np.stack([u + 0.5, v + 0.5], axis=-1)
    assert np.abs(source - centres).max() > 3.0  # the lens moves them
    np.testing.assert_allclose(lens.distort(source), centres, atol=1e-3)  # float32 UVs: 1e-4 px of 320


BLENDER_NAMES = {"polynomial": ("k1", "k2", "k3"), "division": ("division_k1", "division_k2"),
                 "nuke": ("nuke_k1", "nuke_k2"),
                 "brown": ("brown_k1", "brown_k2", "brown_k3", "brown_k4", "brown_p1", "brown_p2")}


def blender_coefficients(model, coefficients):
    """The engine's coefficients as Blender's tracking camera holds them (y up: Brown's p1, p2 = our p2, -p1)."""
    if model == "brown":
        k1, k2, k3, k4, p1, p2 = coefficients
        return k1, k2, k3, k4, p2, -p1
    return coefficients


@pytest.mark.parametrize("model", list(MODELS))
def test_blenders_movie_distortion_node_puts_points_where_distort_does(model, tmp_path):
    """Blender's compositor (Movie Distortion, Distort) on an image of blobs at known undistorted points, the
    clip's Camera set to the same lens: the blobs land where Lens.distort says, up to a shift of the whole image
    by whole (Blender 5.0) or half (5.2) pixels: the node's output grows by the distortion's margins, and uneven
    margins move it (docs/alignment.md)."""
    bpy = pytest.importorskip("bpy")
    openexr = pytest.importorskip("OpenEXR")
    h, w = PLATE
    lens = _lens(model)
    ys, xs = np.mgrid[30:h - 20:35, 30:w - 20:40]
    points = np.stack([xs.ravel(), ys.ravel()], axis=-1) + 0.5
    cv2.imwrite(str(tmp_path / "plate.png"), np.zeros((h, w, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "blobs.png"), (np.clip(_blobs(points, PLATE, 1.2), 0, 1) * 65535).astype(np.uint16))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = w, h, 100
    scene.camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(scene.camera)
    clip = bpy.data.movieclips.load(str(tmp_path / "plate.png"))
    camera = clip.tracking.camera
    camera.sensor_width, camera.focal_length = 36.0, FOCAL * 36.0 / w
    camera.principal_point_pixels = (PRINCIPAL[0], h - PRINCIPAL[1])  # Blender counts y up
    camera.distortion_model = model.upper()
    for name, value in zip(BLENDER_NAMES[model], blender_coefficients(model, lens.coefficients)):
        setattr(camera, name, value)
    tree = bpy.data.node_groups.new("composite", "CompositorNodeTree")
    tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    scene.compositing_node_group = tree
    blobs, plate = tree.nodes.new("CompositorNodeImage"), tree.nodes.new("CompositorNodeImage")
    blobs.image = bpy.data.images.load(str(tmp_path / "blobs.png"))
    blobs.image.colorspace_settings.name = "Non-Color"
    plate.image = bpy.data.images.load(str(tmp_path / "plate.png"))
    distort = tree.nodes.new("CompositorNodeMovieDistortion")
    distort.clip = clip
    distort.inputs["Type"].default_value = "Distort"
    over = tree.nodes.new("ShaderNodeMix")  # onto the plate, as the import's composite does
    over.data_type, over.blend_type = "RGBA", "ADD"
    over.inputs[0].default_value = 1.0
    out = tree.nodes.new("NodeGroupOutput")
    tree.links.new(blobs.outputs["Image"], distort.inputs["Image"])
    tree.links.new(plate.outputs["Image"], over.inputs[6])
    tree.links.new(distort.outputs["Image"], over.inputs[7])
    tree.links.new(over.outputs[2], out.inputs[0])
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.render.image_settings.file_format = "OPEN_EXR"
    scene.render.filepath = str(tmp_path / "shown.exr")
    bpy.ops.render.render(write_still=True)
    with openexr.File(str(tmp_path / "shown.exr")) as f:
        shown = np.array(f.channels()["RGBA"].pixels, np.float32)[..., 0]
    expected = lens.distort(points)
    assert np.linalg.norm(expected - points, axis=1).max() > 3.0  # the lens moves them
    offset = _centroids(shown, expected) - expected
    shift = np.median(offset, axis=0)
    np.testing.assert_allclose(2 * shift, np.round(2 * shift), atol=0.1)  # a shift by half pixels
    assert np.abs(np.round(shift)).max() <= 2
    assert np.abs(offset - shift).max() < 0.06  # every blob where Lens.distort puts it


def test_reconstruct_undistorts_the_frames_before_the_model(tiny_model_dir, tmp_path):
    """The pipeline: frames through the lens before the model (the bundle's frames are the undistorted ones),
    the lens recorded in scene.json for the import; a lens without the focal it is measured in is refused."""
    import json

    from engine.clips.video import read_video
    from engine.pipeline import ReconstructOptions, run_reconstruct
    from engine.windows.predictions import load_windows
    from tests.fixture_paths import GEO4D_FIXTURES

    clip = GEO4D_FIXTURES.parent.parent / "clips" / "drift-turn.mp4"  # 854x480
    lens_options = dict(distortion_model="polynomial", distortion=(-0.3, 0.05, 0.0))
    with pytest.raises(InputError, match="no focal length"):
        run_reconstruct(ReconstructOptions(video=clip, out=tmp_path / "refused", model_dir=tiny_model_dir,
                                           **lens_options))
    assert not (tmp_path / "refused").exists()
    options = ReconstructOptions(video=clip, out=tmp_path / "bundle", model_dir=tiny_model_dir, size=(32, 64),
                                 device="cpu", frames=(0, 16), steps=1, align={"focal": 24.0, "sensor_width": 36.0},
                                 **lens_options)
    bundle = run_reconstruct(options)
    lens = json.loads((bundle / "scene.json").read_text())["metadata"]["undistorted"]
    assert lens == {"model": "polynomial", "coefficients": [-0.3, 0.05, 0.0], "focal": 24.0 / 36.0 * 854,
                    "principal_point": [427.0, 240.0], "plate_size": [480, 854]}
    seen = load_windows(bundle / "windows").rgb.astype(np.float32)  # what the model saw, at the maps' size
    raw = read_video(clip, 0, 16, (32, 64)).frames
    undistorted = undistort_frames(raw, Lens("polynomial", (-0.3, 0.05, 0.0), 24.0 / 36.0 * 854, (427.0, 240.0),
                                             (480, 854)))

    def at_maps(frames):
        return np.stack([cv2.resize(f, seen.shape[2:0:-1], interpolation=cv2.INTER_AREA) for f in frames])

    assert np.abs(seen - at_maps(undistorted)).mean() < 0.5  # grey levels: the same frames (0.0 seen)
    assert np.abs(seen - at_maps(raw)).mean() > 5.0  # not the raw ones (9.6)
