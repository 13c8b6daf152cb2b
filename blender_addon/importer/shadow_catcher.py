"""CG over the plate with its shadows, as Blender's Setup Tracking Scene does it: a ground plane on the import's
found floor that catches the CG's shadows, in its own collection, and a "Background" view layer rendering it.

Setup Tracking Scene makes a "Background" view layer (the ground, a Cycles shadow catcher, with the CG
collections indirect-only, so they cast shadows without being seen) and holds the background collection out of
the CG's layer; the compositor puts the background render over the plate and the CG over that. Here the plate is
the compositor's (depth.py): the Background layer's render goes over the plate before the depth composite puts
the CG over both. EEVEE has no shadow catcher: its material output shows a holdout there (the plate shows
through, without shadows).

The plane and its collection are not part of the import's data (no TAG): a re-import leaves them, and they hang
under the import's origin, so they follow the scene setup.
"""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from ..errors import InputError
from .depth import compositor_tree
from .floor import fit_floor
from .origin import attach, ensure_origin
from .replace import TAG
from .scene_setup import SetupOperator, cloud_points

# On the background collection and the plane: the key of the import they belong to.
BACKGROUND = "parallax_background"
# On the compositor nodes putting the background render over the plate (also tagged with the import).
SHADOWS = "parallax_shadows"
# The view layer's name, when free (an artist's layer of that name is never used: the new one is
# "Background_001" or the like); on the view layer Parallax made: True, how it is found again.
LAYER = "Background"
LAYER_MARK = "parallax_background_layer"
_MARGIN = 0.1  # the plane reaches this share of the floor's extent past the floor points


def background_collection(key: str) -> bpy.types.Collection | None:
    return next((c for c in bpy.data.collections if c.get(BACKGROUND) == key), None)


def add_shadow_catcher(context, key: str) -> bpy.types.Object:
    """A shadow-catcher plane on import `key`'s found floor, covering the floor's points, in collection
    "<key> Background" with the Background view layer set up and wired into the compositor."""
    existing = background_collection(key)
    if existing is not None and any(o.get(BACKGROUND) == key for o in existing.objects):
        raise InputError(f"{key} has a shadow catcher already (in {existing.name})",
                         "delete it to make a new one")
    points = cloud_points(key)
    to_floor = fit_floor(points)
    local = points @ to_floor[:3, :3].T + to_floor[:3, 3]
    spread = np.median(np.linalg.norm(local - np.median(local, axis=0), axis=1))
    height = np.abs(local[:, 2])  # a noisy floor: at least the tenth of the points nearest the plane
    on_floor = local[height <= max(0.01 * spread, np.quantile(height, 0.1)), :2]
    low, high = on_floor.min(axis=0), on_floor.max(axis=0)
    low, high = low - _MARGIN * (high - low), high + _MARGIN * (high - low)

    mesh = bpy.data.meshes.new(f"{key} Shadow Catcher")
    mesh.from_pydata([(low[0], low[1], 0.0), (high[0], low[1], 0.0), (high[0], high[1], 0.0),
                      (low[0], high[1], 0.0)], [], [(0, 1, 2, 3)])
    mesh.materials.append(_material(f"{key} Shadow Catcher"))
    plane = bpy.data.objects.new(f"{key} Shadow Catcher", mesh)
    plane.matrix_world = Matrix(np.linalg.inv(to_floor).tolist())
    plane.is_shadow_catcher = True  # Cycles
    plane[BACKGROUND] = key
    collection = existing or bpy.data.collections.new(f"{key} Background")
    collection[BACKGROUND] = key
    if existing is None:
        context.scene.collection.children.link(collection)
    collection.objects.link(plane)
    attach(plane, ensure_origin(key))
    setup_layers(context.scene, collection)
    wire_background(context.scene, key)
    return plane


def background_layer(scene: bpy.types.Scene) -> bpy.types.ViewLayer | None:
    """The Background view layer Parallax made in scene (found by its mark, whatever its name now), None if none."""
    return next((v for v in scene.view_layers if v.get(LAYER_MARK)), None)


def _material(name: str) -> bpy.types.Material:
    """White diffuse for Cycles (what the catcher bounces onto the CG), a holdout for EEVEE."""
    material = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):  # older Blender makes materials without nodes
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    for shader, target in (("ShaderNodeBsdfDiffuse", "CYCLES"), ("ShaderNodeHoldout", "EEVEE")):
        output = nodes.new("ShaderNodeOutputMaterial")
        output.target = target
        links.new(nodes.new(shader).outputs[0], output.inputs["Surface"])
    return material


def _layer_collection(layer_collection, collection):
    if layer_collection.collection == collection:
        return layer_collection
    for child in layer_collection.children:
        found = _layer_collection(child, collection)
        if found is not None:
            return found
    return None


def setup_layers(scene: bpy.types.Scene, background: bpy.types.Collection) -> bpy.types.ViewLayer:
    """The Background view layer (Parallax's own, made when the scene has none: an artist's view layer is never
    edited, whatever its name) renders `background` with the scene's other collections indirect-only and held
    out (casting shadows, unseen) and imports' collections (their points) excluded; every other view layer
    (the CG's) holds `background` out (the setting of that collection alone). Returns the Background layer."""
    layer = background_layer(scene)
    if layer is None:
        layer = scene.view_layers.new(LAYER)  # Blender makes the name unique
        layer[LAYER_MARK] = True
    for view_layer in scene.view_layers:
        if view_layer != layer:
            _layer_collection(view_layer.layer_collection, background).holdout = True
    for child in layer.layer_collection.children:
        if child.collection.get(BACKGROUND):  # this and other imports' shadow catchers
            continue
        if child.collection.get(TAG):
            child.exclude = True
        else:
            # Indirect-only: Cycles casts their shadows without showing them. EEVEE has no indirect-only and
            # would show them over the plate, in front of plate surfaces or not: held out, they leave nothing
            # there (Cycles renders the same with and without the holdout).
            child.indirect_only = child.holdout = True


def exclude_from_background(scene: bpy.types.Scene, collection: bpy.types.Collection) -> None:
    """An import's collection (its points) is not rendered in Parallax's Background view layer, if the scene
    has one (an import made after Add Shadow Catcher, or a re-import, whose collection is new)."""
    layer = background_layer(scene)
    found = _layer_collection(layer.layer_collection, collection) if layer is not None else None
    if found is not None:  # None: the collection is not in this scene (the artist keeps it in another)
        found.exclude = True


def wire_background(scene: bpy.types.Scene, key: str) -> None:
    """Put the Background layer's render (through the import's lens, if any) over the plate, before import
    `key`'s depth composite (its compositor nodes tagged with `key`, so a re-import, which rebuilds them, calls
    this again). Nothing without a background collection or the import's compositor nodes."""
    tree = compositor_tree(scene)
    layer = background_layer(scene)
    if background_collection(key) is None or layer is None or tree is None:
        return
    group = next((n for n in tree.nodes if n.get(TAG) == key and n.bl_idname == "CompositorNodeGroup"), None)
    if group is None or any(n.get(TAG) == key and n.get(SHADOWS) for n in tree.nodes):
        return
    plate = group.inputs["Plate"]
    over = tree.nodes.new("CompositorNodeAlphaOver")
    render = tree.nodes.new("CompositorNodeRLayers")
    render.scene = scene
    render.layer = layer.name
    for node, location in ((over, (100, 150)), (render, (-100, 450))):
        node[TAG] = key
        node[SHADOWS] = True
        node.location = location
    below, above = (over.inputs["Background"], over.inputs["Foreground"]) if "Foreground" in over.inputs \
        else (over.inputs[1], over.inputs[2])  # 4.x: Fac, Image, Image
    if plate.is_linked:
        tree.links.new(plate.links[0].from_socket, below)
    tree.links.new(_through_lens(tree, key, render.outputs["Image"]), above)
    tree.links.new(over.outputs["Image"], plate)


def _through_lens(tree, key: str, socket):
    """socket through the import's lens when it has one (an undistorted solve: the CG goes through Map UV
    nodes reading the lens' map, depth.py), so the caught shadows land on the distorted plate as the CG does."""
    lens = next((n for n in tree.nodes if n.get(TAG) == key and n.bl_idname == "CompositorNodeMapUV"
                 and not n.get(SHADOWS)), None)
    if lens is None:
        return socket
    node = tree.nodes.new("CompositorNodeMapUV")
    node[TAG] = key
    node[SHADOWS] = True
    node.location = (0, 450)
    tree.links.new(socket, node.inputs["Image"])
    tree.links.new(lens.inputs["UV"].links[0].from_socket, node.inputs["UV"])
    return node.outputs["Image"]


class PARALLAX_OT_add_shadow_catcher(SetupOperator, bpy.types.Operator):
    """Add a ground plane on the found floor that catches the CG's shadows over the plate (Cycles), with a
    Background view layer for it"""

    bl_idname = "parallax.add_shadow_catcher"
    bl_label = "Add Shadow Catcher"

    def setup(self, context, key):
        plane = add_shadow_catcher(context, key)
        return f"Added {plane.name} and the {background_layer(context.scene).name} view layer"


classes = (PARALLAX_OT_add_shadow_catcher,)
