"""Render a synthetic scene with Blender (Cycles, CPU) into a ground-truth file.

    python -m harness.render_scene --scene static --frames 48 --size 160 256 --out gt.npz

Runs where `bpy` imports (the test venv has bpy 5.0.1); the engine itself never imports bpy and calls this
in a subprocess (`engine/synthetic/scenes.py`). Each frame is rendered to a multilayer EXR with the Depth and
Object Index passes. Cycles' Depth pass of a perspective camera is planar z (distance along the view axis,
not along the ray; `tests/test_scenes.py` checks this against a tilted plane) and 1e10 where a ray hits
nothing, which becomes inf (sky). The pixel filter is made tiny so that every pass samples the pixel centre:
colour, depth and mask then describe the same point and K's +0.5 pixel centres hold exactly.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import bpy
import numpy as np
import OpenEXR
from mathutils import Matrix

from engine.synthetic.groundtruth import GroundTruth

from .layouts import FPS, LAYOUTS, SENSOR_WIDTH_MM, Box, Layout, Plane, Sphere, intrinsics

# OpenCV camera axes (x right, y down, z forward) -> Blender camera axes (x right, y up, looking down -z).
OPENCV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])
NO_HIT_DEPTH = 1e9  # Cycles writes 1e10 where a camera ray hits nothing
MOVING_PASS_INDEX = 1


def reset_scene(size: tuple[int, int], samples: int) -> bpy.types.Scene:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = False
    # Direct light only (a hard-edged sun plus a constant ambient term in each material): noise-free at a
    # few samples, which matters more here than global illumination.
    scene.cycles.max_bounces = 0
    scene.cycles.filter_width = 0.01
    scene.render.resolution_y, scene.render.resolution_x = size
    scene.render.resolution_percentage = 100
    scene.render.fps = int(FPS)
    scene.view_settings.view_transform = "Standard"  # plain sRGB, which `linear_to_srgb` reproduces
    scene.view_settings.look = "None"
    layer = scene.view_layers[0]
    layer.use_pass_z = True
    layer.use_pass_object_index = True
    settings = scene.render.image_settings
    settings.media_type = "MULTI_LAYER_IMAGE"
    settings.color_depth = "32"
    settings.exr_codec = "ZIP"
    return scene


def textured_material(name: str, colors, checker_scale: float) -> bpy.types.Material:
    """A diffuse material with some ambient emission: a two-colour checker in object space (metres),
    modulated by fractal noise."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    coords = nodes.new("ShaderNodeTexCoord")
    checker = nodes.new("ShaderNodeTexChecker")
    checker.inputs["Color1"].default_value = (*colors[0], 1.0)
    checker.inputs["Color2"].default_value = (*colors[1], 1.0)
    checker.inputs["Scale"].default_value = checker_scale
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = 4.0 * checker_scale
    noise.inputs["Detail"].default_value = 6.0
    contrast = nodes.new("ShaderNodeMapRange")
    contrast.inputs["To Min"].default_value = 0.45
    contrast.inputs["To Max"].default_value = 1.4
    shade = nodes.new("ShaderNodeVectorMath")
    shade.operation = "MULTIPLY"
    bsdf = nodes.new("ShaderNodeBsdfDiffuse")
    ambient = nodes.new("ShaderNodeEmission")
    ambient.inputs["Strength"].default_value = 0.35
    add = nodes.new("ShaderNodeAddShader")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(coords.outputs["Object"], checker.inputs["Vector"])
    links.new(coords.outputs["Object"], noise.inputs["Vector"])
    links.new(noise.outputs["Fac"], contrast.inputs["Value"])
    links.new(checker.outputs["Color"], shade.inputs[0])
    links.new(contrast.outputs["Result"], shade.inputs[1])
    links.new(shade.outputs["Vector"], bsdf.inputs["Color"])
    links.new(shade.outputs["Vector"], ambient.inputs["Color"])
    links.new(bsdf.outputs["BSDF"], add.inputs[0])
    links.new(ambient.outputs["Emission"], add.inputs[1])
    links.new(add.outputs["Shader"], output.inputs["Surface"])
    return mat


def add_object(shape: Box | Sphere | Plane, name: str) -> bpy.types.Object:
    """Adds one layout shape; sizes are baked into the mesh so object-space textures are in metres."""
    if isinstance(shape, Box):
        bpy.ops.mesh.primitive_cube_add(size=1.0, location=shape.center, rotation=(0, 0, np.radians(shape.yaw_deg)))
        bpy.context.object.data.transform(Matrix.Diagonal((*shape.size, 1.0)))
    elif isinstance(shape, Sphere):
        bpy.ops.mesh.primitive_uv_sphere_add(radius=shape.radius, segments=48, ring_count=24, location=shape.center)
        bpy.ops.object.shade_smooth()
    else:
        bpy.ops.mesh.primitive_plane_add(size=shape.size, location=shape.center,
                                         rotation=(np.radians(shape.tilt_deg), 0, np.radians(shape.yaw_deg)))
    obj = bpy.context.object
    obj.name = name
    obj.data.materials.append(textured_material(name, shape.colors, shape.checker_scale))
    if shape.moving:
        obj.pass_index = MOVING_PASS_INDEX
    return obj


def build(scene: bpy.types.Scene, layout: Layout) -> tuple[bpy.types.Object, list[tuple[bpy.types.Object, np.ndarray]]]:
    """Creates the layout's objects, world and lights. Returns the camera and the moving objects' paths."""
    world = bpy.data.worlds.new("sky")
    world.use_nodes = True
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (*layout.sky_color, 1.0)
    background.inputs["Strength"].default_value = 1.0
    world.cycles_visibility.diffuse = False  # the sky is seen by the camera but lights nothing (see reset_scene)
    world.cycles_visibility.glossy = False
    scene.world = world
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.data.energy = 2.5
    sun.data.angle = 0.0
    sun.rotation_euler = (np.radians(40.0), np.radians(15.0), np.radians(30.0))
    scene.collection.objects.link(sun)

    moving = []
    for kind, shapes in (("box", layout.boxes), ("sphere", layout.spheres), ("plane", layout.planes)):
        for i, shape in enumerate(shapes):
            obj = add_object(shape, f"{kind}{i}")
            if shape.moving:
                moving.append((obj, shape.positions))

    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    camera.data.sensor_fit = "HORIZONTAL"
    camera.data.sensor_width = SENSOR_WIDTH_MM
    camera.data.clip_start = 0.05
    camera.data.clip_end = 2000.0
    scene.collection.objects.link(camera)
    scene.camera = camera
    return camera, moving


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """float linear RGB -> uint8 sRGB (the standard transfer function, as Blender's "Standard" view)."""
    c = np.clip(linear, 0.0, 1.0)
    encoded = np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1.0 / 2.4) - 0.055)
    return np.round(encoded * 255.0).astype(np.uint8)


def read_passes(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A rendered multilayer EXR -> (rgb uint8[H, W, 3], depth float32[H, W] with inf sky, moving bool[H, W])."""
    with OpenEXR.File(str(path)) as exr:
        channels = {name: ch.pixels for part in exr.parts for name, ch in part.channels.items()}
    rgb = linear_to_srgb(channels["ViewLayer.Combined"][..., :3])
    depth = np.array(channels["ViewLayer.Depth.Z"], np.float32)
    depth[depth >= NO_HIT_DEPTH] = np.inf
    moving = channels["ViewLayer.Object Index.X"] > MOVING_PASS_INDEX - 0.5
    return rgb, depth, moving


def render(layout: Layout, size: tuple[int, int], samples: int) -> GroundTruth:
    scene = reset_scene(size, samples)
    camera, moving = build(scene, layout)
    rgb, depth, dynamic, K = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="parallax-render-") as tmp:
        for i in range(layout.num_frames):
            camera.matrix_world = Matrix((layout.camera_to_world[i] @ OPENCV_TO_BLENDER_CAMERA).tolist())
            camera.data.lens = float(layout.lens_mm[i])
            for obj, positions in moving:
                obj.location = positions[i].tolist()
            scene.cycles.seed = i
            scene.render.filepath = str(Path(tmp) / f"{i:06d}.exr")
            bpy.ops.render.render(write_still=True)
            frame_rgb, frame_depth, frame_dynamic = read_passes(Path(scene.render.filepath))
            rgb.append(frame_rgb)
            depth.append(frame_depth)
            dynamic.append(frame_dynamic)
            K.append(intrinsics(camera.data.lens, size))
            used = np.array(camera.matrix_world, np.float64) @ OPENCV_TO_BLENDER_CAMERA
            if np.abs(used - layout.camera_to_world[i]).max() > 1e-4:
                raise RuntimeError(f"Blender moved the camera of frame {i} away from the layout's:\n{used}")
    # The layout's float64 poses, not Blender's float32 copies: the same cameras to 1e-7, but exactly
    # orthonormal, so rotation errors measured against them are not floored by rounding.
    return GroundTruth(name=layout.name, fps=FPS, rgb=np.stack(rgb), depth=np.stack(depth), K=np.stack(K),
                       camera_to_world=layout.camera_to_world.copy(), dynamic=np.stack(dynamic))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.render_scene", description=__doc__.splitlines()[0])
    parser.add_argument("--scene", required=True, choices=sorted(LAYOUTS))
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, nargs=2, default=(160, 256), metavar=("H", "W"))
    parser.add_argument("--samples", type=int, default=8, help="Cycles samples per pixel")
    parser.add_argument("--out", required=True, type=Path, help="ground-truth .npz to write")
    args = parser.parse_args(argv)
    if args.frames < 1 or min(args.size) < 8:
        parser.error("need --frames >= 1 and both --size values >= 8")
    gt = render(LAYOUTS[args.scene](args.frames), tuple(args.size), args.samples)
    partial = args.out.with_name(f"{args.out.name}.{os.getpid()}.partial.npz")  # unique: renders may race
    gt.save(partial)
    partial.replace(args.out)  # never leave a half-written file under the final name
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
