"""Import a reconstruction bundle into the current scene, all in one collection named after the clip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..engine_link import Bundle, check_depth_exr, read_bundle
from ..errors import InputError
from . import replace
from .camera import build_camera
from .depth import SequenceTiming, compositor_tree, connect_output, depth_composite_group, load_depth_sequence, \
    remove_compositor_nodes, remove_scene_compositor, scene_compositor, wire_compositor
from .floor import fit_floor
from .points import FramePoints, build_points
from .transforms import OPENCV_TO_BLENDER_WORLD, blender_camera_matrices, lens_from_intrinsics, srgb_to_linear

# Blender's movie clips start at scene frame 1: clip frame i (0-based, as in the bundle) is scene frame i + 1.
FIRST_SCENE_FRAME = 1


@dataclass
class ImportOptions:
    """What to import and how.

    floor_fit: level the scene on its dominant ground plane (else the first camera looks along +Y, Z up).
    accumulate: show the points of every frame up to the current one, not only the current frame's.
    confidence_threshold: points below it are hidden (a modifier input, changeable after import).
    point_radius: world units; 0 picks half the point spacing's footprint at the median distance, so
        neighbouring points just touch.
    clip_path: the footage, when not at the bundle's source_clip path (None: use source_clip if it exists).
    """

    camera: bool = True
    points: bool = True
    depth: bool = True
    floor_fit: bool = False
    accumulate: bool = False
    confidence_threshold: float = 0.0
    point_radius: float = 0.0
    clip_path: str | None = None


def options_from_settings(settings, clip_path: str | None = None) -> ImportOptions:
    """ImportOptions from the add-on's per-scene settings (properties.ParallaxSettings) or the File > Import
    operator, which name these properties alike."""
    return ImportOptions(camera=settings.import_camera, points=settings.import_points, depth=settings.import_depth,
                         floor_fit=settings.floor_fit, accumulate=settings.accumulate,
                         confidence_threshold=settings.confidence_threshold, point_radius=settings.point_radius,
                         clip_path=clip_path)


def import_bundle(context: bpy.types.Context, bundle_path: str | Path,
                  options: ImportOptions | None = None) -> bpy.types.Collection:
    """Import the bundle at bundle_path into context.scene; replaces an earlier import of the same clip.

    The whole bundle is read and checked first (InputError, nothing changed in the scene). The new import is
    then built beside the earlier one, which is deleted only when the new one is complete: a failure while
    building removes what it made and leaves the scene as it was (objects, render settings, frame range,
    compositor). Callers running this from an operator get one undo step from the operator's UNDO option.
    """
    options = options or ImportOptions()
    bundle = read_bundle(bundle_path)
    check_blender_limits(bundle)
    scene_frames = np.array([f.frame for f in bundle.frames]) + FIRST_SCENE_FRAME
    points = _read_points(bundle, scene_frames) if options.points or options.floor_fit else None
    if options.depth:
        _check_files([f.depth_path for f in bundle.frames])
        if np.any(np.diff(scene_frames) != 1):
            raise InputError("the bundle's frames are not consecutive, so its depth maps make no image sequence",
                             "import without depth")
        for f in bundle.frames:
            check_depth_exr(f.depth_path, bundle.image_size)
    world = OPENCV_TO_BLENDER_WORLD
    if options.floor_fit:
        world = fit_floor(_transform(world, points.xyz)) @ world
    clips_before = set(bpy.data.movieclips)
    clip = _load_clip(options.clip_path or bundle.source_clip)
    source = str(Path(clip.filepath if clip else bundle.source_clip or bundle.root).absolute())
    name = replace.import_key(source, _import_name(bundle, clip))

    scene = context.scene
    settings = SceneSettings.of(scene)
    earlier = replace.SetAside(name)
    compositor_before = compositor_tree(scene)
    before = replace.existing_ids()
    try:
        if options.depth:
            scene_compositor(scene)  # the compositor is the scene's, not ours (removed below only if we made it)
            before = replace.existing_ids()
        collection = _build(scene, name, bundle, options, scene_frames, points, world, clip)
        collection[replace.SOURCE] = source
    except BaseException:
        replace.tag_new(before, name)  # leave nothing half-made behind
        replace.remove_import(name)
        remove_compositor_nodes(name)
        if compositor_tree(scene) is not compositor_before:
            remove_scene_compositor(scene)
        earlier.restore()
        settings.restore(scene)
        if clip is not None and clip not in clips_before:
            bpy.data.movieclips.remove(clip)
        raise
    replace.tag_new(before, name)
    earlier.discard()
    if options.depth:
        connect_output(scene, name)
    return collection


# Blender's limits: the last frame a scene may have, and the frame rates render.fps / fps_base can express.
MAX_SCENE_FRAME = 1048574
FPS_RANGE = (1e-3, 32767.0)


def check_blender_limits(bundle: Bundle) -> None:
    """Refuse (InputError) a bundle whose frame numbers or frame rate Blender cannot hold."""
    last = bundle.frames[-1].frame + FIRST_SCENE_FRAME
    if last > MAX_SCENE_FRAME:
        raise InputError(f"the bundle's last frame is {bundle.frames[-1].frame}; Blender's scenes end at frame "
                         f"{MAX_SCENE_FRAME}", "reconstruct a frame range that starts at the clip's beginning")
    if not FPS_RANGE[0] <= bundle.fps <= FPS_RANGE[1]:
        raise InputError(f"the bundle's frame rate is {bundle.fps:g} fps; Blender takes {FPS_RANGE[0]:g} to "
                         f"{FPS_RANGE[1]:g}", "re-run the engine on the clip with its real frame rate (--fps)")


@dataclass
class SceneSettings:
    """The scene settings an import changes, to put back when it fails."""

    values: dict
    active_clip: object
    camera: object
    use_pass_z: bool

    _PATHS = ("render.resolution_x", "render.resolution_y", "render.resolution_percentage", "render.pixel_aspect_x",
              "render.pixel_aspect_y", "render.fps", "render.fps_base", "render.film_transparent", "frame_start",
              "frame_end", "frame_current")

    @classmethod
    def of(cls, scene) -> "SceneSettings":
        return cls({path: scene.path_resolve(path) for path in cls._PATHS}, scene.active_clip, scene.camera,
                   scene.view_layers[0].use_pass_z)

    def restore(self, scene) -> None:
        for _ in range(2):  # twice: Blender keeps frame_end >= frame_start while either is set
            for path, value in self.values.items():
                owner, _, attr = path.rpartition(".")
                setattr(scene.path_resolve(owner) if owner else scene, attr, value)
        scene.active_clip = self.active_clip
        scene.camera = self.camera
        scene.view_layers[0].use_pass_z = self.use_pass_z


def _build(scene, name: str, bundle: Bundle, options: ImportOptions, scene_frames: np.ndarray,
           points: FramePoints | None, world: np.ndarray, clip) -> bpy.types.Collection:
    """Make the collection and its contents (the bundle is read and checked already)."""
    collection = bpy.data.collections.new(name)
    scene.collection.children.link(collection)
    render_size = (clip.size[1], clip.size[0]) if clip else bundle.image_size
    K = np.stack([f.K for f in bundle.frames])
    scale = _scene_scale(points)
    _setup_scene(scene, bundle, scene_frames, render_size, clip)

    if options.camera:
        camera = build_camera(
            f"{name} Camera",
            blender_camera_matrices(np.stack([f.camera_to_world for f in bundle.frames]), world),
            lens_from_intrinsics(K, bundle.image_size, render_size), scene_frames, (0.01 * scale, 100.0 * scale))
        collection.objects.link(camera)
        camera.data.dof.focus_distance = scale  # the depth compositing's defocus focuses mid-scene
        scene.camera = camera
        if clip:
            camera.data.show_background_images = True
            background = camera.data.background_images.new()
            background.source = "MOVIE_CLIP"
            background.clip = clip
    if options.points:
        radius = options.point_radius or _auto_radius(bundle, K, points, scale)
        collection.objects.link(build_points(f"{name} Points", points, world, radius,
                                             options.confidence_threshold, options.accumulate))
    if options.depth:
        wire_compositor(scene, name, depth_composite_group(f"{name} Depth Composite"),
                        load_depth_sequence(f"{name} Depth", bundle.frames[0].depth_path),
                        depth_timing(bundle), clip)
    return collection


def depth_timing(bundle: Bundle) -> SequenceTiming:
    """How the depth image sequence lines up with the scene frames (the bundle's frames are consecutive)."""
    first = bundle.frames[0].frame
    return SequenceTiming(duration=len(bundle.frames), start=first + FIRST_SCENE_FRAME, offset=first - 1)


def _check_files(paths: list[Path]) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"the bundle lacks {len(missing)} files, the first {missing[0]}",
                         "re-run the engine to rewrite the bundle")


def _read_points(bundle: Bundle, scene_frames: np.ndarray) -> FramePoints:
    """Every frame's points, copied field by field into the arrays Blender takes (no concatenated copy)."""
    _check_files([f.points_path for f in bundle.frames])
    total = sum(f.num_points for f in bundle.frames)
    xyz = np.empty((total, 3), np.float32)
    rgba = np.full((total, 4), 255, np.uint8)  # alpha 255 maps to 1.0 through the same sRGB table
    confidence = np.empty(total, np.float32)
    end = 0
    for i, f in enumerate(bundle.frames):
        cloud = bundle.points(i)
        if len(cloud) != f.num_points:
            raise InputError(f"{f.points_path} holds {len(cloud)} points, scene.json says {f.num_points}",
                             "re-run the engine to rewrite the bundle")
        start, end = end, end + len(cloud)
        for axis, name in enumerate(("x", "y", "z")):
            xyz[start:end, axis] = cloud[name]
        for channel, name in enumerate(("red", "green", "blue")):
            rgba[start:end, channel] = cloud[name]
        confidence[start:end] = cloud["confidence"]
        bad = ~(np.isfinite(xyz[start:end]).all(axis=1) & np.isfinite(confidence[start:end]))
        if bad.any():
            raise InputError(f"{f.points_path} holds {int(bad.sum())} points with NaN or inf coordinates or "
                             "confidence", "re-run the engine to rewrite the bundle")
    frame = np.repeat(scene_frames.astype(np.int32), [f.num_points for f in bundle.frames])
    return FramePoints(xyz=xyz, color=srgb_to_linear(rgba), confidence=confidence, frame=frame)


def _load_clip(path: str) -> bpy.types.MovieClip | None:
    """The clip at path (an already loaded one is reused), or None when there is no file there."""
    if not path or not Path(path).is_file():
        return None
    loaded = set(bpy.data.movieclips)
    clip = bpy.data.movieclips.load(str(Path(path).absolute()), check_existing=True)
    if clip.frame_duration == 0:  # Blender still reports a size for a file it cannot decode
        if clip not in loaded:
            bpy.data.movieclips.remove(clip)
        raise InputError(f"Blender cannot decode the clip {path}",
                         "convert it to a format Blender reads (e.g. MP4/H.264 or an image sequence) or import "
                         "without it")
    return clip


def _import_name(bundle: Bundle, clip) -> str:
    if clip:
        return Path(clip.filepath).stem
    return Path(bundle.source_clip).stem or Path(bundle.root).absolute().name


def _setup_scene(scene, bundle: Bundle, scene_frames: np.ndarray, render_size: tuple[int, int], clip) -> None:
    """Resolution, frame range and frame rate follow the clip (fps_base keeps 23.976 and the like exact)."""
    scene.render.resolution_x = render_size[1]
    scene.render.resolution_y = render_size[0]
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    scene.frame_start = int(scene_frames.min())
    scene.frame_end = int(scene_frames.max())
    fps = max(1, round(bundle.fps))
    scene.render.fps = fps
    scene.render.fps_base = fps / bundle.fps
    if clip:
        scene.active_clip = clip


def _transform(matrix: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    return xyz @ matrix[:3, :3].T + matrix[:3, 3]


def _scene_scale(points: FramePoints | None) -> float:
    """Median distance of the points from the first camera (the engine world's origin), or 1."""
    if points is None or len(points.xyz) == 0:
        return 1.0
    return float(np.median(np.linalg.norm(points.xyz[:: max(1, len(points.xyz) // 100000)], axis=1))) or 1.0


def _auto_radius(bundle: Bundle, K: np.ndarray, points: FramePoints, scale: float) -> float:
    """Half the footprint of the point spacing at the median distance (`scale`), so neighbouring points just
    touch."""
    h, w = bundle.image_size
    per_frame = max(1.0, len(points.xyz) / len(bundle.frames))
    spacing_px = np.sqrt(h * w / per_frame)
    return float(0.5 * spacing_px * scale / np.median(K[:, 0, 0]))
