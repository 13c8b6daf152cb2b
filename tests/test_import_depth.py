"""Depth import: the EXR image sequence and the compositing group, checked by rendering the compositor."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
OpenEXR = pytest.importorskip("OpenEXR")

from blender_addon.importer import import_bundle  # noqa: E402
from blender_addon.importer.depth import compositor_output, compositor_tree  # noqa: E402

RED, BLUE, FOG = (1.0, 0.0, 0.0, 1.0), (0.0, 0.0, 1.0, 1.0), (0.5, 0.5, 0.5, 1.0)
CG_DEPTH = 8.0


@pytest.fixture
def imported(bundle):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    path, recon = bundle
    import_bundle(bpy.context, path)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.device = "CPU"
    scene.render.image_settings.file_format = "OPEN_EXR"
    return scene, recon


def _node(tree, kind):
    return next(n for n in tree.nodes if n.bl_idname == kind)


def _render(scene, frame, path):
    """Render `frame` through the compositor; returns float32[H, W, 4] (top row first)."""
    scene.frame_set(frame)
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    with OpenEXR.File(str(path)) as f:
        return np.array(f.channels()["RGBA"].pixels, np.float32)


def test_depth_sequence_follows_the_frames(imported, tmp_path):
    scene, recon = imported
    tree = compositor_tree(scene)
    image = _node(tree, "CompositorNodeImage").image
    assert image.source == "SEQUENCE" and image.colorspace_settings.name == "Non-Color"
    assert [i.name for i in bpy.data.images if i.source == "SEQUENCE"] == [image.name, image.name.replace(
        "Depth", "Motion Matte")]  # the depth and the motion mattes, once each
    tree.links.new(_node(tree, "CompositorNodeScale").outputs[0], compositor_output(tree))
    for i in (0, 4, 11):
        shown = _render(scene, scene.frame_start + i, tmp_path / f"depth{i}.exr")
        np.testing.assert_array_equal(shown[..., 0], recon.depth[i])


def _prepare_group(scene, fog_density, defocus):
    """Plate = red, CG = blue at CG_DEPTH everywhere (the render layers unplugged)."""
    tree = compositor_tree(scene)
    group_node = _node(tree, "CompositorNodeGroup")
    for link in [link for link in tree.links if link.from_node.bl_idname == "CompositorNodeRLayers"]:
        tree.links.remove(link)
    group_node.inputs["Plate"].default_value = RED
    group_node.inputs["CG"].default_value = BLUE
    group_node.inputs["CG Depth"].default_value = CG_DEPTH
    group_node.inputs["Fog Color"].default_value = FOG
    group_node.inputs["Fog Density"].default_value = fog_density
    _node(group_node.node_tree, "CompositorNodeDefocus").mute = not defocus


def test_cg_goes_over_the_plate_by_depth_with_fog(imported, tmp_path):
    scene, recon = imported
    _prepare_group(scene, fog_density=0.1, defocus=False)
    shown = _render(scene, scene.frame_start, tmp_path / "comp.exr")[..., :3]
    depth = recon.depth[0]
    plate_in_front = (depth > 0) & (depth < CG_DEPTH)
    assert 0 < plate_in_front.sum() < depth.size and (depth == 0).any()  # all three cases occur
    z = np.where(plate_in_front, depth, CG_DEPTH)  # sky (depth 0) is behind the CG
    colour = np.where(plate_in_front[..., None], np.array(RED[:3]), np.array(BLUE[:3]))
    fog = 1 - np.exp(-0.1 * z)
    expected = colour * (1 - fog[..., None]) + np.array(FOG[:3]) * fog[..., None]
    # Z-combine anti-aliases the CG edge: compare away from it.
    m = plate_in_front
    edge = np.zeros_like(m)
    edge[:-1] |= m[:-1] != m[1:]
    edge[1:] |= m[:-1] != m[1:]
    edge[:, :-1] |= m[:, :-1] != m[:, 1:]
    edge[:, 1:] |= m[:, :-1] != m[:, 1:]
    np.testing.assert_allclose(shown[~edge], expected[~edge], atol=2e-3)


def test_defocus_blurs_out_of_focus_cg_only(imported, tmp_path):
    scene, _ = imported
    tree = compositor_tree(scene)
    group_node = _node(tree, "CompositorNodeGroup")

    def render(defocus):
        """CG: 1 where the frame has sky, 0 elsewhere (a sharp edge), at CG_DEPTH in front of the whole plate."""
        _prepare_group(scene, fog_density=0.0, defocus=defocus)
        sky = tree.nodes.new("ShaderNodeMath" if bpy.app.version >= (5, 0, 0) else "CompositorNodeMath")
        sky.operation = "LESS_THAN"
        sky.inputs[1].default_value = 1e-9
        tree.links.new(_node(tree, "CompositorNodeScale").outputs[0], sky.inputs[0])
        tree.links.new(sky.outputs[0], group_node.inputs["CG"])
        for link in group_node.inputs["Plate Depth"].links:
            tree.links.remove(link)
        group_node.inputs["Plate Depth"].default_value = 0.0  # no depth: behind the CG
        image = _render(scene, scene.frame_start, tmp_path / f"defocus{defocus}.exr")
        tree.nodes.remove(sky)
        return image

    sharp = render(False)
    scene.camera.data.dof.focus_distance = 1.0  # the CG at CG_DEPTH is far out of focus
    _node(group_node.node_tree, "CompositorNodeDefocus").f_stop = 0.5
    blurred = render(True)

    def mixed(image):  # pixels between the edge's two sides
        return np.sum((image[..., 0] > 0.05) & (image[..., 0] < 0.95))

    assert mixed(sharp) == 0 and mixed(blurred) > 20
