"""Depth: the per-frame depth EXRs (and motion mattes) as image sequences, and a compositing node group driven by
them (defocus by depth, depth fog, Z-combine of CG over the plate, the plate's moving things held out of the CG)
wired into the scene's compositor.

Blender 5.x keeps the compositor in scene.compositing_node_group (math and mix are the shader nodes there);
4.2-4.5 keep it in scene.node_tree with the Compositor* math and mix nodes. CI tests 4.2, 4.5, 5.0 and 5.2
(docs/import.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from .replace import TAG

_BLENDER_5 = bpy.app.version >= (5, 0, 0)
_FAR = 1e10  # a depth behind anything in a scene: "nothing there"


@dataclass
class SequenceTiming:
    """Which file an image sequence shows at a scene frame: file number = frame - start + 1 + offset.

    duration: number of files; start: scene frame of the first file; offset: first file number - 1.
    """

    duration: int
    start: int
    offset: int

    def apply(self, user) -> None:
        """Set an ImageUser (or a compositor Image node, which has the same settings)."""
        user.frame_duration = self.duration
        user.frame_start = self.start
        user.frame_offset = self.offset
        user.use_auto_refresh = True


def load_map_sequence(name: str, first_file: Path) -> bpy.types.Image:
    """A bundle's per-frame maps as one Non-Color float image sequence: the depth maps (planar depth in the grey
    channel) or the motion mattes (1 = moving, in the grey channel)."""
    image = bpy.data.images.load(str(first_file.absolute()), check_existing=False)
    image.name = name
    image.source = "SEQUENCE"
    image.colorspace_settings.name = "Non-Color"
    return image


def depth_composite_group(name: str) -> bpy.types.NodeTree:
    """Node group: Plate, Plate Depth, Motion Matte, Hold Out, CG, CG Alpha, CG Depth, Fog Color, Fog Density ->
    Image, Depth.

    Defocus blurs the CG by its depth (the scene camera's focus distance, the node's f-stop; the plate has its
    own lens blur already), the CG is Z-combined over the plate by depth (alpha-over where it is partly
    transparent), and fog mixes in Fog Color by 1 - exp(-density * depth). Where nothing was rendered (CG Alpha
    0, a transparent film) the plate shows, its sky included: with no CG and no fog the result is the plate.
    Hold-out: where the Motion Matte is 1 (something moving in the plate, e.g. a person walking) the plate
    stays on top of the CG, its depth too, by Motion Matte x Hold Out (0 = off, 1 = on, between: partly);
    the moving things' depth is the least reliable, so a matte holds them out better than Z-combine.
    """
    tree = bpy.data.node_groups.new(name, "CompositorNodeTree")
    face = tree.interface
    face.new_socket("Plate", in_out="INPUT", socket_type="NodeSocketColor")
    face.new_socket("Plate Depth", in_out="INPUT", socket_type="NodeSocketFloat")
    for name, default in (("Motion Matte", 0.0), ("Hold Out", 1.0)):
        socket = face.new_socket(name, in_out="INPUT", socket_type="NodeSocketFloat")
        socket.subtype = "FACTOR"
        socket.min_value, socket.max_value, socket.default_value = 0.0, 1.0, default
    face.new_socket("CG", in_out="INPUT", socket_type="NodeSocketColor")
    face.new_socket("CG Alpha", in_out="INPUT", socket_type="NodeSocketFloat").default_value = 1.0
    face.new_socket("CG Depth", in_out="INPUT", socket_type="NodeSocketFloat").default_value = _FAR
    face.new_socket("Fog Color", in_out="INPUT", socket_type="NodeSocketColor").default_value = (0.6, 0.65, 0.7, 1)
    face.new_socket("Fog Density", in_out="INPUT", socket_type="NodeSocketFloat").min_value = 0.0
    face.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    face.new_socket("Depth", in_out="OUTPUT", socket_type="NodeSocketFloat")

    nodes, links = tree.nodes, tree.links
    group_in = nodes.new("NodeGroupInput")
    group_out = nodes.new("NodeGroupOutput")

    defocus = nodes.new("CompositorNodeDefocus")
    defocus.use_zbuffer = True  # the Z input is real depth, not a normalised blur amount
    defocus.f_stop = 4.0
    links.new(group_in.outputs["CG"], defocus.inputs["Image"])
    links.new(group_in.outputs["CG Depth"], defocus.inputs["Z"])

    # Depth 0 marks plate pixels without depth (sky): far behind any CG surface, but in front of the CG's
    # empty background (alpha 0), which is pushed further still.
    invalid = _math(tree, "LESS_THAN", group_in.outputs["Plate Depth"], 1e-9)
    plate_depth = _math(tree, "MULTIPLY_ADD", invalid.outputs[0], _FAR, group_in.outputs["Plate Depth"])
    empty = _math(tree, "LESS_THAN", group_in.outputs["CG Alpha"], 1e-6)
    cg_depth = _math(tree, "MULTIPLY_ADD", empty.outputs[0], 4 * _FAR, group_in.outputs["CG Depth"])
    combine = nodes.new("CompositorNodeZcombine")
    links.new(group_in.outputs["Plate"], combine.inputs[0])
    links.new(plate_depth.outputs[0], combine.inputs[1])
    links.new(defocus.outputs["Image"], combine.inputs[2])
    links.new(cg_depth.outputs[0], combine.inputs[3])
    if "Use Alpha" in combine.inputs:  # 5.x: options are inputs
        combine.inputs["Use Alpha"].default_value = True
    else:
        combine.use_alpha = True

    held = _math(tree, "MULTIPLY", group_in.outputs["Motion Matte"], group_in.outputs["Hold Out"])
    held.use_clamp = True
    image = _mix_colour(tree, held.outputs[0], combine.outputs[0], group_in.outputs["Plate"])
    depth_gap = _math(tree, "SUBTRACT", plate_depth.outputs[0], combine.outputs[1])
    depth = _math(tree, "MULTIPLY_ADD", held.outputs[0], depth_gap.outputs[0], combine.outputs[1]).outputs[0]

    scaled = _math(tree, "MULTIPLY", group_in.outputs["Fog Density"], depth)
    transmitted = _math(tree, "EXPONENT", _math(tree, "MULTIPLY", scaled.outputs[0], -1.0).outputs[0])
    fog_amount = _math(tree, "SUBTRACT", 1.0, transmitted.outputs[0])
    fogged = _mix_colour(tree, fog_amount.outputs[0], image, group_in.outputs["Fog Color"])
    links.new(fogged, group_out.inputs["Image"])
    links.new(depth, group_out.inputs["Depth"])
    return tree


def _math(tree, operation: str, a, b=None, c=None):
    """Math node on sockets or constants (floats)."""
    node = tree.nodes.new("ShaderNodeMath" if _BLENDER_5 else "CompositorNodeMath")
    node.operation = operation
    for socket, value in zip(node.inputs, (a, b, c)):
        if isinstance(value, float):
            socket.default_value = value
        elif value is not None:
            tree.links.new(value, socket)
    return node


def _mix_colour(tree, factor, a, b):
    """Mix a -> b by factor; returns the result socket."""
    if _BLENDER_5:
        node = tree.nodes.new("ShaderNodeMix")
        node.data_type = "RGBA"
        inputs, output = (node.inputs[0], node.inputs[6], node.inputs[7]), node.outputs[2]
    else:
        node = tree.nodes.new("CompositorNodeMixRGB")
        inputs, output = (node.inputs[0], node.inputs[1], node.inputs[2]), node.outputs[0]
    for socket, source in zip(inputs, (factor, a, b)):
        tree.links.new(source, socket)
    return output


def scene_compositor(scene: bpy.types.Scene) -> bpy.types.NodeTree:
    """The scene's compositing node tree, made if there is none yet (it belongs to the scene, not an import)."""
    if not _BLENDER_5:
        if not scene.use_nodes:
            fresh = scene.node_tree is None  # else an artist's tree with Use Nodes off: keep its nodes
            scene.use_nodes = True
            if fresh:
                scene.node_tree.nodes.clear()  # Blender's default Render Layers -> Composite would hide ours
        return scene.node_tree
    if scene.compositing_node_group is None:
        tree = bpy.data.node_groups.new(f"{scene.name} Compositing", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
    return scene.compositing_node_group


@dataclass(frozen=True)
class CompositorBefore:
    """What scene_compositor may change, taken before it runs (restore_compositor puts it back)."""
    tree: bpy.types.NodeTree | None
    use_nodes: bool  # Blender 4.x's Use Nodes switch (5.x has none)
    viewer_images: frozenset[str]  # the Viewer Node images Blender 4.5 makes when a compositor is switched on

    @classmethod
    def of(cls, scene: bpy.types.Scene) -> CompositorBefore:
        return cls(compositor_tree(scene), _BLENDER_5 or scene.use_nodes, _viewer_images())


def _viewer_images() -> frozenset[str]:
    return frozenset(image.name for image in bpy.data.images if image.type == "COMPOSITING")


def restore_compositor(scene: bpy.types.Scene, before: CompositorBefore) -> None:
    """Undo scene_compositor for a failed import: the scene's compositor as `before` found it."""
    if _BLENDER_5:
        tree = scene.compositing_node_group
        if tree is not None and tree != before.tree:  # made by this import (== compares the data-blocks)
            scene.compositing_node_group = before.tree
            bpy.data.node_groups.remove(tree)
        return
    if before.tree is None and scene.node_tree is not None:
        # 4.x cannot delete a scene's own tree: leave it as Blender makes it when Use Nodes is first ticked.
        tree = scene.node_tree
        tree.nodes.clear()
        layers, composite = tree.nodes.new("CompositorNodeRLayers"), tree.nodes.new("CompositorNodeComposite")
        tree.links.new(layers.outputs["Image"], composite.inputs["Image"])
    scene.use_nodes = before.use_nodes
    for name in _viewer_images() - before.viewer_images:
        bpy.data.images.remove(bpy.data.images[name])


def wire_compositor(scene: bpy.types.Scene, key: str, group: bpy.types.NodeTree, depth: bpy.types.Image,
                    matte: bpy.types.Image | None, timing: SequenceTiming, clip, origin: bpy.types.Object,
                    lens_uv: bpy.types.Image | None = None) -> None:
    """Add plate, depth, motion matte (None: the bundle has none), render layers and the group to the scene's
    compositor (nodes tagged with `key`); the group feeds the compositor's output when nothing else does. The
    plate's depth (the import's units) is multiplied by origin's world scale, the scene units the CG renders in
    after a Set Scale. lens_uv: the engine solved undistorted frames (scene.json metadata.undistorted), so the
    CG, the depths and the matte go through the lens (a Map UV node reading this map, lens_uv_image) to land
    on the distorted plate."""
    tree = scene_compositor(scene)
    nodes, links = tree.nodes, tree.links

    def add(kind: str, x: float, y: float):
        node = nodes.new(kind)
        node.location = (x, y)
        node[TAG] = key
        return node

    group_node = add("CompositorNodeGroup", 300, 0)
    group_node.node_tree = group
    group_node.label = f"{key} Depth Composite"
    if clip:
        # The clip node gives the clip's own size; at any render size but 100 % it must be scaled to the
        # render size, or the plate lands as a centre crop (50 %) or a small box (200 %) under the CG.
        plate = add("CompositorNodeMovieClip", -500, 200)
        plate.clip = clip
        links.new(_scaled_to_render_size(scene, tree, add, plate.outputs["Image"], tuple(clip.size), 200),
                  group_node.inputs["Plate"])

    uv = None
    if lens_uv is not None:
        uv_node = add("CompositorNodeImage", -500, -600)
        uv_node.image = lens_uv
        uv = _scaled_to_render_size(scene, tree, add, uv_node.outputs["Image"], tuple(lens_uv.size), -600)

    def through_lens(socket, x: float, y: float, depth: bool = False):
        """socket through the lens (when lens_uv): each pixel of the distorted plate takes the value where
        its light falls in the undistorted render. Blender's Movie Distortion node would do it from the
        clip's Camera, but its output grows by the lens' margins and uneven margins move the whole image by
        whole or half pixels, differently in each Blender version (docs/alignment.md); Map UV keeps the
        render's pixel grid. A depth goes as its inverse, which blends across an edge as surfaces do (a depth
        halfway between a near object and the empty background, 1e10, would put the object's rim behind the
        plate); Blender's divide gives 0 for 0: no depth stays no depth."""
        if uv is None:
            return socket
        if depth:
            socket = _tagged(_math(tree, "DIVIDE", 1.0, socket), key, x - 100, y).outputs[0]
        node = add("CompositorNodeMapUV", x, y)
        links.new(socket, node.inputs["Image"])
        links.new(uv, node.inputs["UV"])
        if depth:
            return _tagged(_math(tree, "DIVIDE", 1.0, node.outputs["Image"]), key, x + 100, y).outputs[0]
        return node.outputs["Image"]

    # The maps are scaled as the plate is, so they land on its pixels in every Blender (4.x's corrections too).
    depth_node = add("CompositorNodeImage", -500, 0)
    depth_node.image = depth
    timing.apply(depth_node)
    to_scene_units = add("ShaderNodeMath" if _BLENDER_5 else "CompositorNodeMath", -150, 0)
    to_scene_units.operation = "MULTIPLY"
    _scale_driver(to_scene_units.inputs[1], origin)
    links.new(_scaled_to_render_size(scene, tree, add, depth_node.outputs["Image"], tuple(depth.size), 0,
                                     "Nearest", data=True),  # no depths blended (but by 4.2's Scale)
              to_scene_units.inputs[0])
    links.new(through_lens(to_scene_units.outputs[0], -50, 0, depth=True), group_node.inputs["Plate Depth"])
    if matte is not None:
        matte_node = add("CompositorNodeImage", -500, -120)
        matte_node.image = matte
        timing.apply(matte_node)
        matte_scaled = _scaled_to_render_size(scene, tree, add, matte_node.outputs["Image"], tuple(matte.size),
                                              -120, "Bilinear", data=True)  # a soft edge
        links.new(through_lens(matte_scaled, -100, -120), group_node.inputs["Motion Matte"])
    scene.view_layers[0].use_pass_z = True
    scene.render.film_transparent = True  # the CG's empty background has alpha 0, so the plate shows there
    render = add("CompositorNodeRLayers", -300, -250)
    render.scene = scene
    for i, (output, target) in enumerate((("Image", "CG"), ("Alpha", "CG Alpha"), ("Depth", "CG Depth"))):
        links.new(through_lens(render.outputs[output], -100, -200 - 100 * i, depth=output == "Depth"),
                  group_node.inputs[target])

    connect_output(scene, key)


# On the lens image an import makes (lens_uv_image): True, so a re-import finds it to update in place.
LENS = "parallax_lens"


def lens_uv_image(name: str, uv) -> bpy.types.Image:
    """uv: float32[H, W, 2] (engine distortion_uv_map) as a Non-Color float image packed into the .blend (a
    full-float EXR: nothing is written into the bundle, whose folder holds only what the engine writes). Its
    third channel is 1, which Map UV reads as "inside" (0 would leave the pixel empty)."""
    h, w = uv.shape[:2]
    pixels = np.ones((h, w, 4), np.float32)
    pixels[..., :2] = uv[::-1]  # Blender stores the bottom row first
    image = bpy.data.images.new(name, w, h, alpha=True, float_buffer=True)
    image[LENS] = True
    _fill_lens_image(image, pixels.ravel())
    return image


def refill_lens_image(image: bpy.types.Image, source: bpy.types.Image) -> None:
    """Give image (an earlier import's lens map) the pixels of source (the new import's), packed again, so a
    re-import updates the one image in place (what the artist's own nodes read included)."""
    pixels = np.empty(len(source.pixels), np.float32)
    source.pixels.foreach_get(pixels)
    if tuple(image.size) != tuple(source.size):
        image.scale(*source.size)
    _fill_lens_image(image, pixels)


def _fill_lens_image(image: bpy.types.Image, pixels) -> None:
    """Set a lens image's pixels (float32, Blender's order) and pack it, full float, into the .blend."""
    image.colorspace_settings.name = "Non-Color"  # kept as they are, not through a view transform
    image.pixels.foreach_set(pixels)
    image.file_format = "OPEN_EXR"
    image.use_half_precision = False  # half floats would misplace pixels by up to 1/2048 of the plate
    image.pack()


def _tagged(node, key: str, x: float, y: float):
    """A node of an import (tagged with its key, so a re-import removes it), placed at (x, y)."""
    node.location = (x, y)
    node[TAG] = key
    return node


def _to_render_size(node, interpolation: str):
    """A Scale node set to stretch its input to the render size (render percentage included)."""
    if "Type" in node.inputs:  # 5.x: the options are menu inputs
        node.inputs["Type"].default_value = "Render Size"
        node.inputs["Frame Type"].default_value = "Stretch"
        node.inputs["Interpolation"].default_value = interpolation
        for axis in ("X", "Y"):  # "Clip" would fade the border pixels to transparent
            node.inputs[f"Extension {axis}"].default_value = "Extend"
    else:
        node.space = "RENDER_SIZE"
        node.frame_method = "STRETCH"
        if not _samples_off_centre(node):  # 4.5; 4.2 interpolates bilinearly, with no choice
            node.interpolation = _enum_item(node, "interpolation", interpolation.lower())
    return node


def _scaled_to_render_size(scene, tree, add, source, size: tuple[int, int], y: float,
                           interpolation: str = "Bilinear", data: bool = False):
    """source (an image of size (W, H)) through a Scale to the render size, its pixel centres aligned and its
    border extended in every Blender (the 4.x corrections below; 4.2's Scale is bilinear whatever
    `interpolation` says); returns the scaled socket. Nodes at height y. data: a map (depth, matte) whose alpha
    is not coverage (the matte's is its "tested" channel): made opaque first in 4.x, whose border correction
    divides by the alpha."""
    scale = _to_render_size(add("CompositorNodeScale", -300, y), interpolation)
    if _BLENDER_5:
        tree.links.new(source, scale.inputs[0])
        return scale.outputs[0]
    if data:
        opaque = add("CompositorNodeSetAlpha", -650, y + 150)
        opaque.mode = "REPLACE_ALPHA"
        opaque.inputs["Alpha"].default_value = 1.0
        tree.links.new(source, opaque.inputs[0])
        source = opaque.outputs[0]
    if _samples_off_centre(scale):
        return _align_4x_scale(scene, tree, add, source, scale, size, y)
    tree.links.new(source, scale.inputs[0])  # 4.5: pixel centres aligned, but the border fades
    return _extend_border(tree, add, scale.outputs[0], y)


def _samples_off_centre(scale) -> bool:
    """Whether this Blender's Scale node samples off by half a pixel (4.2's compositor, whose Scale has no
    interpolation setting; not 4.5's nor 5.x's): _align_4x_scale corrects it. 4.x's Scale (4.2 and 4.5) reads
    zero past the input's border, which _extend_border corrects."""
    return not _BLENDER_5 and not hasattr(scale, "interpolation")


def _align_4x_scale(scene, tree, add, source, scale, size: tuple[int, int], y: float):
    """Wire source -> scale so that 4.2's Scale node samples like 5.x's (pixel centres aligned, the border
    extended), at whatever render size the scene has when it renders; returns the aligned output.

    4.2's Scale samples output pixel d at input position d * s (s = input size / output size, pixel centres
    at integers, bottom-up) instead of (d + 0.5) * s - 0.5, and reads zero outside the input: a downscale picks
    single pixels (no 2x2 average at 50 %), an upscale is off by 0.5 * (1 / s - 1) output pixels and its top
    rows and right columns fade. A bilinear Translate of the input by 0.5 * (1 - s) input pixels (between -0.5
    and 0.5) puts the samples where they belong: for a downscale by that, negative; for an upscale flipped (by
    minus that), as 4.x's Translate reads nothing at all left of or below the image but half a pixel past its
    top and right, like Scale. (Translating the upscaled output instead would need whole pixels past 300 %,
    and a whole-pixel Translate moves the image's area, which a Flip does not reverse: the shift comes out
    wrong and the uncovered border empty.) _extend_border then extends the border instead of fading it; the
    image's centroid lands where 5.x puts it. Drivers follow the render size.
    """
    links = tree.links
    flip, up, unflip, down = (add(kind, x, y + 150) for kind, x in (
        ("CompositorNodeFlip", -550), ("CompositorNodeTranslate", -500), ("CompositorNodeFlip", -450),
        ("CompositorNodeTranslate", -400)))
    flip.axis = unflip.axis = "XY"
    for node in (up, down):
        node.interpolation = "Bilinear"
        node.use_relative = False
    chain = (flip, up, unflip, down, scale)
    links.new(source, flip.inputs[0])
    for a, b in zip(chain, chain[1:]):
        links.new(a.outputs[0], b.inputs[0])
    for axis, length in zip("XY", size):
        # s = input / output size = 100 * length / (resolution * percentage)
        shift = f"0.5 * (1.0 - {100.0 * length} / (res * pct))"  # input pixels
        _driver(up.inputs[axis], scene, axis, f"-max(0.0, {shift})")
        _driver(down.inputs[axis], scene, axis, f"min(0.0, {shift})")
    return _extend_border(tree, add, scale.outputs[0], y)


def _extend_border(tree, add, source, y: float):
    """A 4.x Scale's output `source` with its border extended, not faded: dividing by the alpha that came in
    from outside the input (straight alpha) and making the image opaque again gives the border pixels the
    colour of the pixels inside, as 5.x's Extend does. Returns the extended output; nodes at height y."""
    straight = add("CompositorNodePremulKey", -100, y + 150)
    straight.mapping = "PREMUL_TO_STRAIGHT"
    opaque = add("CompositorNodeSetAlpha", 0, y + 150)
    opaque.mode = "REPLACE_ALPHA"
    opaque.inputs["Alpha"].default_value = 1.0
    tree.links.new(source, straight.inputs[0])
    tree.links.new(straight.outputs[0], opaque.inputs[0])
    return opaque.outputs[0]


def _enum_item(node, prop: str, name: str) -> str:
    """The identifier of enum property `prop`'s item `name`, in whatever case this Blender spells it (4.5's
    Scale node has "BILINEAR", 5.x's menus "Bilinear")."""
    return next(item.identifier for item in node.bl_rna.properties[prop].enum_items
                if item.identifier.lower() == name)


def _driver(socket, scene, axis: str, expression: str) -> None:
    """Drive socket's default value by `expression` of the scene's resolution (res, along axis) and pct."""
    driver = socket.driver_add("default_value").driver
    driver.type = "SCRIPTED"
    for name, path in (("res", f"render.resolution_{axis.lower()}"), ("pct", "render.resolution_percentage")):
        variable = driver.variables.new()
        variable.name = name
        variable.targets[0].id_type = "SCENE"
        variable.targets[0].id = scene
        variable.targets[0].data_path = path
    driver.expression = expression  # a simple expression: evaluated without Python (auto-run off too)


def _scale_driver(socket, obj) -> None:
    """Drive socket's default value by obj's world scale (the mean of its axes)."""
    driver = socket.driver_add("default_value").driver
    driver.type = "AVERAGE"
    variable = driver.variables.new()
    variable.type = "TRANSFORMS"
    variable.targets[0].id = obj
    variable.targets[0].transform_type = "SCALE_AVG"
    variable.targets[0].transform_space = "WORLD_SPACE"


def connect_output(scene: bpy.types.Scene, key: str) -> None:
    """Feed import `key`'s depth composite into the compositor's output when nothing else does."""
    tree = compositor_tree(scene)
    group = next((n for n in tree.nodes if n.get(TAG) == key and n.bl_idname == "CompositorNodeGroup"), None) \
        if tree is not None else None
    output = compositor_output(tree) if group is not None else None
    if output is not None and not output.is_linked:
        tree.links.new(group.outputs["Image"], output)


def compositor_output(tree):
    """The socket that is the compositor's result (group output in 5.x, Composite node in 4.x); the node is
    the scene's, so it is not tagged and survives re-imports."""
    kind = "NodeGroupOutput" if _BLENDER_5 else "CompositorNodeComposite"
    node = next((n for n in tree.nodes if n.bl_idname == kind), None)
    if node is None:
        node = tree.nodes.new(kind)
        node.location = (600, 0)
    return node.inputs[0]


def compositor_tree(scene: bpy.types.Scene) -> bpy.types.NodeTree | None:
    """The scene's compositing node tree, None if it has none."""
    return scene.compositing_node_group if _BLENDER_5 else scene.node_tree


def remove_compositor_nodes(key: str) -> None:
    """Delete the compositor nodes an earlier import `key` added, in every scene."""
    for scene in bpy.data.scenes:
        tree = compositor_tree(scene)
        if tree is not None:
            for node in [n for n in tree.nodes if n.get(TAG) == key]:
                tree.nodes.remove(node)

