"""An import of a bundle solved on undistorted frames (scene.json metadata.undistorted): the compositor puts the
CG and the depths through the lens (Map UV with the lens' map), so a rendered object lands on the distorted
plate where the lens puts it, with no shift of the whole image (headless bpy)."""

import json

import cv2
import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
pytest.importorskip("OpenEXR")

from mathutils import Vector  # noqa: E402

from blender_addon.importer import ImportOptions, import_bundle  # noqa: E402
from blender_addon.importer.depth import LENS, compositor_tree  # noqa: E402
from blender_addon.importer.replace import TAG  # noqa: E402
from blender_addon.importer.shadow_catcher import LAYER, add_shadow_catcher  # noqa: E402
from engine.clips.lens import Lens, distortion_uv_map  # noqa: E402
from engine.formats.bundle import write_bundle  # noqa: E402
from tests.plate_clip import render  # noqa: E402
from tests.synthetic_bundle import synthetic_reconstruction  # noqa: E402

UPSCALE = 2
NAME = "plate_0001"  # the import's name: the plate's first file's
K1, K2 = -0.3, 0.05  # polynomial: barrel, pixels at the corners move inwards by several pixels


def _import(tmp_path, undistorted: bool, points: bool = False, before=None):
    """Write the bundle and its plate, import them into an empty scene (after `before()`, if given)."""
    recon = synthetic_reconstruction(num_frames=3, size=(48, 64), zoom=False)
    h, w = recon.depth.shape[1:]
    plate_size = (h * UPSCALE, w * UPSCALE)
    focal = float(recon.K[0, 0, 0]) * UPSCALE
    principal = (float(recon.K[0, 0, 2]) * UPSCALE, float(recon.K[0, 1, 2]) * UPSCALE)  # off the centre
    lens = Lens("polynomial", (K1, K2, 0.0), focal, principal, plate_size)
    if undistorted:
        recon.metadata["undistorted"] = lens.to_json()
    bundle = write_bundle(recon, tmp_path / "bundle")
    (tmp_path / "plate").mkdir()
    for i, rgb in enumerate(recon.rgb):
        dark = cv2.resize(rgb // 8, (plate_size[1], plate_size[0]), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(tmp_path / "plate" / f"plate_{i + 1:04d}.png"), dark[..., ::-1])
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    if before is not None:
        before()
    import_bundle(bpy.context, bundle, ImportOptions(points=points, clip_path=str(tmp_path / "plate" /
                                                                                  "plate_0001.png")))
    return scene, lens, plate_size  # the clip's own Camera stays undistorted: the lens is scene.json's


def test_the_compositor_distorts_cg_and_depths_only_for_an_undistorted_solve(tmp_path):
    for undistorted in (False, True):
        scene, lens, _ = _import(tmp_path / str(undistorted), undistorted)
        tree = compositor_tree(scene)
        lenses = [n for n in tree.nodes if n.bl_idname == "CompositorNodeMapUV"]
        if not undistorted:
            assert not lenses
            assert not [i for i in bpy.data.images if i.name.endswith(" Lens")]
            continue
        group = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeGroup")

        def upstream(node):
            return {node} | {n for link in tree.links if link.to_node == node for n in upstream(link.from_node)}

        fed = {link.to_socket.name for link in tree.links
               if link.to_node == group and upstream(link.from_node) & set(lenses)}
        assert fed == {"CG", "CG Alpha", "CG Depth", "Plate Depth", "Motion Matte"}  # depths as inverses (depth.py)
        maps = {n.image for lens_node in lenses for n in upstream(lens_node) if n.bl_idname == "CompositorNodeImage"
                and n.image.name.endswith(" Lens")}
        assert len(maps) == 1  # every Map UV reads the one map of the lens
        (image,) = maps
        assert image.packed_file is not None  # in the .blend, not in the bundle (which holds the engine's files)
        assert sorted(p.name for p in (tmp_path / str(undistorted) / "bundle").iterdir()) == [
            "depth", "mattes", "points", "scene.json"]
        assert tuple(image.size) == lens.plate_size[::-1]
        assert image.colorspace_settings.name == "Non-Color"
        pixels = np.array(image.pixels[:], np.float32).reshape(lens.plate_size + (4,))[::-1]
        np.testing.assert_allclose(pixels[..., :2], distortion_uv_map(lens), atol=1e-6)  # full floats


def _pixels(image) -> np.ndarray:
    return np.array(image.pixels[:], np.float32).reshape(tuple(image.size)[::-1] + (4,))[::-1]


def test_a_reimport_updates_the_lens_image_in_place(tmp_path):
    """A re-import (here with another lens) gives Parallax's lens image the new map, in place: no "<clip>
    Lens.001", what the artist's own nodes read follows, and an artist's image of the same name is not touched."""
    artists = np.random.default_rng(0).uniform(size=(3, 5, 4)).astype(np.float32)

    def artists_image():
        image = bpy.data.images.new(f"{NAME} Lens", 5, 3, float_buffer=True)
        image.pixels.foreach_set(artists[::-1].ravel())

    _, lens, plate_size = _import(tmp_path, undistorted=True, before=artists_image)
    artist = bpy.data.images[f"{NAME} Lens"]
    (ours,) = [i for i in bpy.data.images if i.get(LENS)]
    assert ours != artist and ours.name.startswith(f"{NAME} Lens")
    material = bpy.data.materials.new("artist's")  # the artist reads Parallax's map in a node of their own
    if bpy.app.version < (5, 0, 0):  # older Blender makes materials without nodes
        material.use_nodes = True
    texture = material.node_tree.nodes.new("ShaderNodeTexImage")
    texture.image = ours
    names = sorted(i.name for i in bpy.data.images)

    scene_json = tmp_path / "bundle" / "scene.json"
    data = json.loads(scene_json.read_text())
    other = Lens("polynomial", (-0.1, 0.0, 0.0), lens.focal, lens.principal, plate_size)
    data["metadata"]["undistorted"] = other.to_json()
    scene_json.write_text(json.dumps(data))
    import_bundle(bpy.context, tmp_path / "bundle", ImportOptions(points=False, clip_path=str(
        tmp_path / "plate" / "plate_0001.png")))

    assert sorted(i.name for i in bpy.data.images) == names  # no copy made, none renamed
    assert [i for i in bpy.data.images if i.get(LENS)] == [ours] and ours.get(TAG) == NAME
    assert texture.image == ours
    maps = {n.image for n in compositor_tree(bpy.context.scene).nodes if n.bl_idname == "CompositorNodeImage"}
    assert ours in maps and artist not in maps
    np.testing.assert_allclose(_pixels(ours)[..., :2], distortion_uv_map(other), atol=1e-6)
    assert np.abs(distortion_uv_map(other) - distortion_uv_map(lens)).max() > 0.05  # the lens changed (UV: 0-1)
    np.testing.assert_array_equal(_pixels(artist), artists)

    saved = tmp_path / "scene.blend"  # what is packed into the .blend is the new map too
    bpy.ops.wm.save_as_mainfile(filepath=str(saved))
    bpy.ops.wm.open_mainfile(filepath=str(saved))
    (ours,) = [i for i in bpy.data.images if i.get(LENS)]
    np.testing.assert_allclose(_pixels(ours)[..., :2], distortion_uv_map(other), atol=1e-6)


def test_a_shadow_catchers_render_goes_through_the_same_lens(tmp_path):
    scene, _, _ = _import(tmp_path, undistorted=True, points=True)
    tree = compositor_tree(scene)
    group = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeGroup")
    add_shadow_catcher(bpy.context, group[TAG])
    over = group.inputs["Plate"].links[0].from_node
    above = over.inputs["Foreground"] if "Foreground" in over.inputs else over.inputs[2]  # 4.x: Fac, Image, Image
    shadows, cg = above.links[0].from_node, group.inputs["CG"].links[0].from_node
    assert shadows.bl_idname == cg.bl_idname == "CompositorNodeMapUV"
    assert shadows.inputs["Image"].links[0].from_node.layer == LAYER
    assert shadows.inputs["UV"].links[0].from_socket == cg.inputs["UV"].links[0].from_socket  # the one map


def _blob_centre(image: np.ndarray) -> np.ndarray:
    weight = np.clip(image, 0, None)
    v, u = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    return np.array([(weight * (u + 0.5)).sum(), (weight * (v + 0.5)).sum()]) / weight.sum()


@pytest.mark.parametrize("percentage", [100, 200])  # the lens' map is scaled to the render size
def test_a_rendered_object_lands_where_the_lens_puts_it(tmp_path, percentage):
    scene, lens, (h, w) = _import(tmp_path, undistorted=True)
    scene.render.resolution_percentage = percentage
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 16
    scene.render.image_settings.file_format = "OPEN_EXR"
    scene.frame_set(scene.frame_start)
    camera = scene.camera
    focal, (cx, cy) = lens.focal, lens.principal
    material = bpy.data.materials.new("glow")
    material.use_nodes = True
    emission = material.node_tree.nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 20.0
    output = material.node_tree.nodes["Material Output"]
    material.node_tree.links.new(emission.outputs[0], output.inputs["Surface"])
    pinhole = np.array([[0.2 * w, 0.2 * h], [0.15 * w, 0.85 * h], [0.88 * w, 0.5 * h], [0.85 * w, 0.12 * h],
                        [0.12 * w, 0.15 * h]])
    shown_at = []
    for u, v in pinhole:
        direction = Vector(((u - cx) / focal, -(v - cy) / focal, -1.0))  # Blender's camera: y up, looking down -z
        bpy.ops.mesh.primitive_uv_sphere_add(radius=0.006, location=camera.matrix_world @ (direction * 0.25))
        ball = bpy.context.object
        ball.data.materials.append(material)
        with_ball = render(scene, scene.frame_start, tmp_path / "with.exr")[..., 0]
        ball.hide_render = True
        without = render(scene, scene.frame_start, tmp_path / "without.exr")[..., 0]
        shown_at.append(_blob_centre(with_ball - without) * 100 / percentage)  # in plate pixels
    expected = lens.distort(pinhole)
    moved = expected - pinhole
    assert np.linalg.norm(moved, axis=1).min() > 1.5  # the lens moves each object by pixels, each its own way
    offset = np.array(shown_at) - expected
    assert np.abs(offset).max() < 0.2, offset  # no shift of the whole image; the balls are a few pixels wide
