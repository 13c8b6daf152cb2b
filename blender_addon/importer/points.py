"""The point cloud: one mesh holding every frame's points, shown per frame by a Geometry Nodes modifier."""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Matrix

COLOR_ATTRIBUTE = "point_color"
CONFIDENCE_ATTRIBUTE = "confidence"
FRAME_ATTRIBUTE = "frame"
MODIFIER = "Parallax Points"


@dataclass
class FramePoints:
    """Every frame's points, concatenated.

    xyz: float32[P, 3] engine world (OpenCV axes; the object's matrix converts to Blender's world).
    color: float32[P, 4] scene-linear RGBA.
    confidence: float32[P].
    frame: int32[P] scene frame the point belongs to.
    """

    xyz: np.ndarray
    color: np.ndarray
    confidence: np.ndarray
    frame: np.ndarray


def build_points(name: str, points: FramePoints, world: np.ndarray, radius: float,
                 confidence_threshold: float, accumulate: bool) -> bpy.types.Object:
    """Mesh object (vertices only) with point_color/confidence/frame attributes and the per-frame modifier.

    world: float64[4, 4] engine world -> Blender world, set as the object's matrix (no per-point work).
    radius: point radius in engine world units.
    """
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(points.xyz))
    mesh.attributes["position"].data.foreach_set("vector", np.ascontiguousarray(points.xyz, np.float32).ravel())
    mesh.color_attributes.new(COLOR_ATTRIBUTE, "FLOAT_COLOR", "POINT").data.foreach_set(
        "color", np.ascontiguousarray(points.color, np.float32).ravel())
    mesh.attributes.new(CONFIDENCE_ATTRIBUTE, "FLOAT", "POINT").data.foreach_set(
        "value", np.ascontiguousarray(points.confidence, np.float32))
    mesh.attributes.new(FRAME_ATTRIBUTE, "INT", "POINT").data.foreach_set(
        "value", np.ascontiguousarray(points.frame, np.int32))
    mesh.update()

    obj = bpy.data.objects.new(name, mesh)
    obj.matrix_world = Matrix(world.tolist())
    modifier = obj.modifiers.new(MODIFIER, "NODES")
    modifier.node_group = _points_node_group(f"{name} Frame Points", _points_material(f"{name} Color"))
    set_modifier_input(modifier, "Confidence Threshold", float(confidence_threshold))
    set_modifier_input(modifier, "Point Radius", float(radius))
    set_modifier_input(modifier, "Accumulate", bool(accumulate))
    return obj


def set_modifier_input(modifier, name: str, value) -> None:
    """Set the Geometry Nodes modifier's input `name` (the group interface socket of that name)."""
    _modifier_input(modifier, name).value = value


def modifier_input(modifier, name: str):
    """The value of the Geometry Nodes modifier's input `name`."""
    return _modifier_input(modifier, name).value


def _modifier_input(modifier, name: str):
    """An object whose `value` is the modifier's input `name`, the same on every supported Blender.

    In Blender 4.2 to 5.0 the inputs are ID properties keyed by socket identifier (`modifier[identifier]`);
    5.2 refuses those and has RNA properties instead (`modifier.properties.inputs.<identifier>.value`)."""
    identifier = modifier.node_group.interface.items_tree[name].identifier
    if hasattr(modifier, "properties"):
        return getattr(modifier.properties.inputs, identifier)
    return _IdPropertyInput(modifier, identifier)


@dataclass
class _IdPropertyInput:
    modifier: bpy.types.Modifier
    identifier: str

    @property
    def value(self):
        return self.modifier[self.identifier]

    @value.setter
    def value(self, value) -> None:
        self.modifier[self.identifier] = value


def _points_node_group(name: str, material: bpy.types.Material) -> bpy.types.NodeTree:
    """Geometry Nodes: keep the points of the current frame (or of every frame up to it, Accumulate) whose
    confidence reaches the threshold, and turn them into render points with the colour material."""
    tree = bpy.data.node_groups.new(name, "GeometryNodeTree")
    face = tree.interface
    face.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    face.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    threshold = face.new_socket("Confidence Threshold", in_out="INPUT", socket_type="NodeSocketFloat")
    threshold.min_value = 0.0
    radius = face.new_socket("Point Radius", in_out="INPUT", socket_type="NodeSocketFloat")
    radius.min_value = 0.0
    radius.subtype = "DISTANCE"
    face.new_socket("Accumulate", in_out="INPUT", socket_type="NodeSocketBool")

    nodes, links = tree.nodes, tree.links
    group_in = nodes.new("NodeGroupInput")
    group_out = nodes.new("NodeGroupOutput")
    time = nodes.new("GeometryNodeInputSceneTime")

    frame = nodes.new("GeometryNodeInputNamedAttribute")
    frame.data_type = "INT"
    frame.inputs["Name"].default_value = FRAME_ATTRIBUTE
    confidence = nodes.new("GeometryNodeInputNamedAttribute")
    confidence.data_type = "FLOAT"
    confidence.inputs["Name"].default_value = CONFIDENCE_ATTRIBUTE

    # Nearest frame (epsilon 0.5) so motion-blur subframes still show their frame's points.
    is_now = _compare(tree, "EQUAL", frame.outputs["Attribute"], time.outputs["Frame"])
    is_now.inputs["Epsilon"].default_value = 0.5
    is_past = _compare(tree, "LESS_THAN", frame.outputs["Attribute"], time.outputs["Frame"])
    past_shown = _boolean(tree, "AND", is_past.outputs["Result"], group_in.outputs["Accumulate"])
    shown = _boolean(tree, "OR", is_now.outputs["Result"], past_shown.outputs["Boolean"])
    confident = _compare(tree, "GREATER_EQUAL", confidence.outputs["Attribute"],
                         group_in.outputs["Confidence Threshold"])
    selection = _boolean(tree, "AND", shown.outputs["Boolean"], confident.outputs["Result"])

    to_points = nodes.new("GeometryNodeMeshToPoints")
    links.new(group_in.outputs["Geometry"], to_points.inputs["Mesh"])
    links.new(selection.outputs["Boolean"], to_points.inputs["Selection"])
    links.new(group_in.outputs["Point Radius"], to_points.inputs["Radius"])
    set_material = nodes.new("GeometryNodeSetMaterial")
    set_material.inputs["Material"].default_value = material
    links.new(to_points.outputs["Points"], set_material.inputs["Geometry"])
    links.new(set_material.outputs["Geometry"], group_out.inputs["Geometry"])
    return tree


def _compare(tree, operation: str, a, b):
    node = tree.nodes.new("FunctionNodeCompare")
    node.data_type = "FLOAT"
    node.operation = operation
    tree.links.new(a, node.inputs["A"])
    tree.links.new(b, node.inputs["B"])
    return node


def _boolean(tree, operation: str, a, b):
    node = tree.nodes.new("FunctionNodeBooleanMath")
    node.operation = operation
    tree.links.new(a, node.inputs[0])
    tree.links.new(b, node.inputs[1])
    return node


def _points_material(name: str) -> bpy.types.Material:
    """Unlit material showing each point's footage colour (emission), the same in Cycles and EEVEE."""
    material = emission_material(name)
    attribute = material.node_tree.nodes.new("ShaderNodeAttribute")
    attribute.attribute_type = "GEOMETRY"
    attribute.attribute_name = COLOR_ATTRIBUTE
    material.node_tree.links.new(attribute.outputs["Color"], material.node_tree.nodes["Emission"].inputs["Color"])
    return material


def emission_material(name: str, color=(1.0, 1.0, 1.0, 1.0)) -> bpy.types.Material:
    """Material of one Emission node (named "Emission") of `color` (linear RGBA) into the output: unlit."""
    material = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):  # older Blender makes materials without nodes
        material.use_nodes = True
    nodes = material.node_tree.nodes
    nodes.clear()
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = color
    output = nodes.new("ShaderNodeOutputMaterial")
    material.node_tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material
