"""Bundle -> .blend + preview PNG without a user interface (scripts/bundle_to_blend.py, the demo, CI).

The .blend holds exactly what File > Import makes (with Level on Floor when the points hold a floor). The
preview is rendered afterwards with Cycles on the CPU from a viewer camera that sees the whole shot: every frame's
points, camera frusta along the path, and the last frame's depth map on that frame's frustum (yellow = near,
purple = far). Those preview objects are not saved.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..engine_link import read_bundle
from .bundle_import import ImportOptions, depth_timing, import_bundle
from .floor import FloorNotFound
from .points import FRAME_ATTRIBUTE, MODIFIER, emission_material, set_modifier_input

PREVIEW_SIZE = (480, 270)
FRUSTUM_COUNT = 5


def bundle_to_blend(bundle: str | Path, blend_path: str | Path, preview_png: str | Path,
                    clip_path: str | Path | None = None, samples: int = 16) -> None:
    """Import `bundle` into a fresh scene (levelled on the floor when one is found), save it as blend_path and
    render preview_png."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    context = bpy.context
    options = ImportOptions(clip_path=str(clip_path) if clip_path else None, floor_fit=True)
    try:
        collection = import_bundle(context, bundle, options)
    except FloorNotFound:
        options.floor_fit = False
        collection = import_bundle(context, bundle, options)
    blend_path = Path(blend_path).absolute()
    blend_path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(blend_path))
    render_preview(context.scene, collection, read_bundle(bundle), Path(preview_png).absolute(), samples)


def render_preview(scene: bpy.types.Scene, collection: bpy.types.Collection, bundle, png: Path,
                   samples: int) -> None:
    """Add the preview set-up (viewer camera, frusta, depth card) to the imported scene and render png."""
    shot_camera = scene.camera
    points = next(o for o in collection.objects if o.type == "MESH")
    set_modifier_input(points.modifiers[MODIFIER], "Accumulate", True)
    last = scene.frame_end
    scene.frame_set(last)

    cloud = _world_points(points)
    distance = np.linalg.norm(cloud - np.array(shot_camera.matrix_world.translation), axis=1)
    scale = float(np.median(distance))
    near = float(np.percentile(distance[_frames_of(points) == last], 5))
    preview = bpy.data.collections.new("Parallax Preview")
    scene.collection.children.link(preview)
    frames = np.unique(np.linspace(scene.frame_start, last, FRUSTUM_COUNT).round().astype(int))
    preview.objects.link(_frusta(scene, shot_camera, frames, 0.4 * scale))
    depth_image = next((i for i in bpy.data.images if i.source == "SEQUENCE"), None)
    if depth_image is not None:
        preview.objects.link(_depth_card(scene, shot_camera, depth_image, depth_timing(bundle), 0.4 * scale, near))
    scene.camera = _viewer(cloud, np.array([np.array(_camera_at(scene, shot_camera, f).translation)
                                            for f in frames]), _camera_at(scene, shot_camera, scene.frame_start))
    preview.objects.link(scene.camera)
    scene.frame_set(last)

    world = bpy.data.worlds.new("Parallax Preview") if scene.world is None else scene.world
    scene.world = world
    world.color = (0.02, 0.02, 0.025)
    render = scene.render
    render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    render.use_compositing = False  # the compositor would show the plate/CG comp, not the 3D view
    scene.view_settings.view_transform = "Standard"  # the footage's colours as they are
    render.resolution_x, render.resolution_y = PREVIEW_SIZE
    render.resolution_percentage = 100
    render.image_settings.file_format = "PNG"
    render.filepath = str(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.render.render(write_still=True)


def _world_points(obj) -> np.ndarray:
    """float64[P, 3] every vertex of the points mesh in world coordinates."""
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.attributes["position"].data.foreach_get("vector", co)
    m = np.array(obj.matrix_world)
    return co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]


def _frames_of(obj) -> np.ndarray:
    frames = np.empty(len(obj.data.vertices), np.int32)
    obj.data.attributes[FRAME_ATTRIBUTE].data.foreach_get("value", frames)
    return frames


def _camera_at(scene, camera, frame) -> Matrix:
    scene.frame_set(int(frame))
    return camera.matrix_world.copy()


def _frame_corners(scene, camera, frame, distance: float) -> tuple[Vector, list[Vector]]:
    """Apex and the 4 image corners (top-right, bottom-right, bottom-left, top-left) at `distance`, world."""
    matrix = _camera_at(scene, camera, frame)
    corners = camera.data.view_frame(scene=scene)
    return matrix.translation.copy(), [matrix @ (c * (distance / -c.z)) for c in corners]


def _frusta(scene, camera, frames, distance: float) -> bpy.types.Object:
    """One wire mesh: a pyramid per frame in `frames`, apex at the camera, base on the image frame."""
    verts, faces = [], []
    for frame in frames:
        apex, corners = _frame_corners(scene, camera, frame, distance)
        base = len(verts)
        verts += [apex, *corners]
        faces += [(base, base + 1 + i, base + 1 + (i + 1) % 4) for i in range(4)]
        faces.append(tuple(base + 1 + i for i in range(4)))
    mesh = bpy.data.meshes.new("Camera Frusta")
    mesh.from_pydata([tuple(v) for v in verts], [], faces)
    obj = bpy.data.objects.new("Camera Frusta", mesh)
    wire = obj.modifiers.new("Wire", "WIREFRAME")
    wire.thickness = 0.01 * distance
    mesh.materials.append(emission_material("Frustum", (1.0, 0.75, 0.1, 1.0)))
    return obj


def _depth_card(scene, camera, image, timing, distance: float, near: float) -> bpy.types.Object:
    """The current frame's depth map on its frustum's image plane, coloured by near / depth (yellow = near)."""
    _, corners = _frame_corners(scene, camera, scene.frame_current, distance * 0.999)
    mesh = bpy.data.meshes.new("Depth Card")
    mesh.from_pydata([tuple(c) for c in corners], [], [(0, 1, 2, 3)])
    uv = mesh.uv_layers.new(name="UVMap")
    uv.data.foreach_set("uv", np.array([1, 1, 1, 0, 0, 0, 0, 1], np.float32))
    obj = bpy.data.objects.new("Depth Card", mesh)

    material = emission_material("Depth Card")
    nodes, links = material.node_tree.nodes, material.node_tree.links
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    timing.apply(texture.image_user)
    disparity = nodes.new("ShaderNodeMath")
    disparity.operation = "DIVIDE"  # Blender's divide gives 0 for depth 0 (no depth): the sky stays dark
    disparity.use_clamp = True
    disparity.inputs[0].default_value = near
    links.new(texture.outputs["Color"], disparity.inputs[1])
    ramp = nodes.new("ShaderNodeValToRGB")  # magma-like: far purple, near yellow
    stops = ramp.color_ramp.elements
    stops[0].color = (0.02, 0.0, 0.06, 1.0)
    stops[1].color = (1.0, 0.85, 0.3, 1.0)
    stops.new(0.5).color = (0.75, 0.1, 0.3, 1.0)
    links.new(disparity.outputs[0], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], nodes["Emission"].inputs["Color"])
    mesh.materials.append(material)
    return obj


def _viewer(cloud: np.ndarray, path: np.ndarray, first: Matrix) -> bpy.types.Object:
    """A camera above, behind and to the right of the shot's first camera (`first`, its matrix) that frames the
    points and the camera path."""
    sample = cloud[:: max(1, len(cloud) // 50000)]
    lo, hi = np.percentile(sample, 2, axis=0), np.percentile(sample, 98, axis=0)
    lo, hi = np.minimum(lo, path.min(axis=0)), np.maximum(hi, path.max(axis=0))
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(hi - lo)) / 2
    forward = -first.col[2].xyz
    forward = Vector((forward.x, forward.y, 0.0)).normalized()
    right = forward.cross(Vector((0.0, 0.0, 1.0)))
    direction = (-forward + 0.45 * right + Vector((0.0, 0.0, 0.7))).normalized()
    data = bpy.data.cameras.new("Preview Viewer")
    data.lens = 30.0
    data.clip_start, data.clip_end = 0.01 * radius, 100.0 * radius
    viewer = bpy.data.objects.new("Preview Viewer", data)
    viewer.location = Vector(centre.tolist()) + direction * radius * 2.2
    viewer.rotation_euler = (-direction).to_track_quat("-Z", "Y").to_euler()
    return viewer
