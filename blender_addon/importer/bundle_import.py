"""Import a reconstruction bundle into the current scene, all in one collection named after the clip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

from ..engine_link import FIRST_FRAME, Bundle, Lens, check_depth_exr, check_matte_exr, distortion_uv_map, read_bundle
from ..errors import InputError
from . import replace
from .camera import ROTATION_MODES, build_camera
from .collection_edits import carry_collection_edits
from .depth import LENS, CompositorBefore, SequenceTiming, connect_output, depth_composite_group, \
    lens_uv_image, load_map_sequence, refill_lens_image, remove_compositor_nodes, restore_compositor, \
    scene_compositor, wire_compositor
from .floor import fit_floor
from .origin import attach, find_origin, is_origin, new_origin, world_scale
from .points import FramePoints, build_points
from .quality import key_solve_error
from .shadow_catcher import exclude_from_background, wire_background
from .transforms import OPENCV_TO_BLENDER_WORLD, SENSOR_WIDTH_MM, blender_camera_matrices, srgb_to_linear

# Blender's default frame range: a scene still at it has no range the artist chose.
DEFAULT_FRAME_RANGE = (1, 250)
# On the scene: the frame range the last import set, so a later import may change it again.
FRAME_RANGE = "parallax_frame_range"
# On an import's collection: what the import did that the artist should hear about (shown after it).
NOTES = "parallax_notes"
# On an object the import hid because it hid the camera: never hidden again once the artist shows it.
HIDDEN = "parallax_hidden"


@dataclass
class ImportOptions:
    """What to import and how.

    floor_fit: level the scene on its dominant ground plane (else the first camera looks along +Y, Z up).
    accumulate: show the points of every frame up to the current one, not only the current frame's.
    confidence_threshold: points below it are hidden (a modifier input, changeable after import).
    point_radius: world units; 0 picks half the point spacing's footprint at the median distance, so
        neighbouring points just touch.
    clip_path: the footage, when not at the bundle's source_clip path (None: use source_clip if it exists).
    rotation_mode: the camera's rotation keys, "XYZ" (Euler) or "QUATERNION".
    """

    camera: bool = True
    points: bool = True
    depth: bool = True
    floor_fit: bool = False
    accumulate: bool = False
    confidence_threshold: float = 0.0
    point_radius: float = 0.0
    clip_path: str | None = None
    rotation_mode: str = "XYZ"


def options_from_settings(settings, clip_path: str | None = None) -> ImportOptions:
    """ImportOptions from the add-on's per-scene settings (properties.ParallaxSettings) or the File > Import
    operator, which name these properties alike."""
    return ImportOptions(camera=settings.import_camera, points=settings.import_points, depth=settings.import_depth,
                         floor_fit=settings.floor_fit, accumulate=settings.accumulate,
                         confidence_threshold=settings.confidence_threshold, point_radius=settings.point_radius,
                         clip_path=clip_path, rotation_mode=settings.rotation_mode)


def import_bundle(context: bpy.types.Context, bundle_path: str | Path,
                  options: ImportOptions | None = None) -> bpy.types.Collection:
    """Import the bundle at bundle_path into context.scene; replaces an earlier import of the same clip, whose
    camera is animated again in place (the artist's edits to it survive). import_notes(collection) says what
    the artist should know (a frame range kept, objects hidden).

    The whole bundle is read and checked first (InputError, nothing changed in the scene). The new import is
    then built beside the earlier one, which is deleted only when the new one is complete: a failure while
    building removes what it made and leaves the scene as it was (objects, render settings, frame range,
    compositor). Callers running this from an operator get one undo step from the operator's UNDO option.
    """
    options = options or ImportOptions()
    if options.rotation_mode not in ROTATION_MODES:
        raise InputError(f"unknown rotation mode {options.rotation_mode!r}", f"use one of {ROTATION_MODES}")
    bundle = read_bundle(bundle_path)
    clips_before = set(bpy.data.movieclips)
    clip = _load_clip(options.clip_path or bundle.source_clip)
    try:
        scene_frames = np.array([f.frame for f in bundle.frames]) + first_scene_frame(clip)
        check_blender_limits(bundle, scene_frames)
        points = _read_points(bundle, scene_frames) if options.points or options.floor_fit else None
        if options.depth:
            _check_files([f.depth_path for f in bundle.frames]
                         + ([f.matte_path for f in bundle.frames] if bundle.has_mattes else []))
            if np.any(np.diff(scene_frames) != 1):
                raise InputError("the bundle's frames are not consecutive, so its depth maps make no image "
                                 "sequence", "import without depth")
            for f in bundle.frames:
                check_depth_exr(f.depth_path, bundle.image_size)
                if bundle.has_mattes:
                    check_matte_exr(f.matte_path, bundle.image_size)
        world = OPENCV_TO_BLENDER_WORLD
        if options.floor_fit:
            world = fit_floor(_transform(world, points.xyz)) @ world
        camera_matrices = blender_camera_matrices(np.stack([f.camera_to_world for f in bundle.frames]), world)
    except BaseException:
        if clip is not None and clip not in clips_before:
            bpy.data.movieclips.remove(clip)
        raise
    source = str(Path(bpy.path.abspath(clip.filepath, library=clip.library) if clip
                      else bundle.source_clip or bundle.root).absolute())
    name = replace.import_key(source, _import_name(bundle, clip))

    scene = context.scene
    settings = SceneSettings.of(scene)
    earlier = replace.SetAside(name)
    compositor_before = CompositorBefore.of(scene)
    before = replace.existing_ids()
    try:
        if options.depth:
            scene_compositor(scene)  # the compositor is the scene's, not ours (removed below only if we made it)
            before = replace.existing_ids()
        collection = _build(scene, name, bundle, options, scene_frames, points, world, camera_matrices, clip,
                            earlier)
        collection[replace.SOURCE] = source
    except BaseException:
        replace.tag_new(before, name)  # leave nothing half-made behind
        replace.remove_import(name)
        remove_compositor_nodes(name)
        restore_compositor(scene, compositor_before)
        earlier.restore()
        settings.restore(scene)
        if clip is not None and clip not in clips_before:
            bpy.data.movieclips.remove(clip)
        raise
    replace.tag_new(before, name)
    carry_collection_edits(earlier, collection)
    _keep_lens_image(earlier, name)
    earlier.discard()
    if options.depth:
        connect_output(scene, name)
    notes = [_frame_range(scene, scene_frames)]
    if options.camera:
        origin = np.array(find_origin(name).matrix_world)
        notes.append(_hide_objects_around(scene, _transform(origin, camera_matrices[:, :3, 3])))
    collection[NOTES] = [note for note in notes if note]
    return collection


def _keep_lens_image(earlier: replace.SetAside, key: str) -> None:
    """The new import `key` is complete: the earlier import's lens image, if both have one, takes the new one's
    pixels and users and stays (one image, updated in place: no "<clip> Lens.001", and the artist's own nodes
    reading it read the new lens)."""
    old = next((b for b in earlier.blocks if isinstance(b, bpy.types.Image) and b.get(LENS)), None)
    new = next((i for i in bpy.data.images if i.get(replace.TAG) == key and i.get(LENS)), None)
    if old is None or new is None:
        return
    refill_lens_image(old, new)
    new.user_remap(old)
    bpy.data.images.remove(new)
    earlier.keep(old)


def import_notes(collection: bpy.types.Collection) -> list[str]:
    """What the import of `collection` did that the artist should know (empty when nothing)."""
    return [str(note) for note in collection.get(NOTES, [])]


def first_scene_frame(clip) -> int:
    """The scene frame that shows the clip's first frame: the clip's Start Frame less its Frame Offset (the
    Movie Clip Editor's footage settings; 1 for a clip at its defaults, 1001 for a VFX plate), 1 without a clip.
    Clip frame i (0-based) shows at scene frame i + first_scene_frame(clip), in the Movie Clip Editor and the
    compositor's Movie Clip node alike, movie or image sequence (seen in Blender 5.0: Start Frame 5, Frame Offset
    3 shows the clip's first file at scene frame 2). The one mapping between the two: Reconstruct's frame range
    (scene frames) becomes clip frames by it, and the import keys clip frames at scene frames by it."""
    if clip is None:
        return FIRST_FRAME  # clip frame i (0-based) at scene frame i + 1, as a movie clip's defaults play it
    return clip.frame_start - clip.frame_offset


def _frame_range(scene, scene_frames: np.ndarray) -> str | None:
    """Set the scene's frame range to the clip's, unless the artist chose another one (then kept, and said)."""
    shot = (int(scene_frames.min()), int(scene_frames.max()))
    current = (scene.frame_start, scene.frame_end)
    ours = tuple(scene.get(FRAME_RANGE, ())) == current
    if current != shot and current != DEFAULT_FRAME_RANGE and not ours:
        return (f"kept the scene's frame range {current[0]}-{current[1]}; the shot is frames {shot[0]}-{shot[1]} "
                "(set Start/End in the Output properties)")
    scene.frame_start, scene.frame_end = shot  # start first: Blender keeps end >= start, and start <= shot end
    scene[FRAME_RANGE] = shot
    if not shot[0] <= scene.frame_current <= shot[1]:
        scene.frame_current = shot[0]
    return None


def _hide_objects_around(scene, positions: np.ndarray) -> str | None:
    """Hide (viewport and render) the meshes of no import whose bounds hold a camera position
    (float64[N, 3], world), like the startup Cube around the first camera, which would render the first frames
    black; says which. An object the artist showed again after that is left alone."""
    hidden = []
    for obj in scene.objects:
        if obj.type != "MESH" or obj.get(replace.TAG) or obj.get(HIDDEN) or obj.hide_render:  # imports' own
            continue
        corners = np.array([obj.matrix_world @ Vector(c) for c in obj.bound_box])
        inside = np.all((positions >= corners.min(0)) & (positions <= corners.max(0)), axis=1)
        if inside.any():
            obj.hide_render = obj.hide_viewport = True
            obj[HIDDEN] = True
            hidden.append(obj.name)
    if not hidden:
        return None
    return (f"hid {', '.join(hidden)}: the camera passes inside (shown again from the Outliner, it stays shown "
            "on re-imports)")


# Blender's limits: the last frame a scene may have, and the frame rates render.fps / fps_base can express.
MAX_SCENE_FRAME = 1048574
FPS_RANGE = (1e-3, 32767.0)


def check_blender_limits(bundle: Bundle, scene_frames: np.ndarray) -> None:
    """Refuse (InputError) a bundle whose scene frames or frame rate Blender cannot hold."""
    if scene_frames.max() > MAX_SCENE_FRAME or scene_frames.min() < -MAX_SCENE_FRAME:
        raise InputError(f"the bundle's frames land on scene frames {scene_frames.min()}-{scene_frames.max()}; "
                         f"Blender's scenes hold frames -{MAX_SCENE_FRAME} to {MAX_SCENE_FRAME}",
                         "reconstruct a frame range that starts at the clip's beginning, or lower the clip's "
                         "Start Frame")
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
           points: FramePoints | None, world: np.ndarray, camera_matrices: np.ndarray, clip,
           earlier: replace.SetAside) -> bpy.types.Collection:
    """Make the collection and its contents (the bundle is read and checked already); the earlier import's
    origin and camera, if any, are kept (the camera animated again) rather than made anew.

    camera_matrices and world are in the origin's space: the origin empty carries the scene setup."""
    collection = bpy.data.collections.new(name)
    scene.collection.children.link(collection)
    render_size = (clip.size[1], clip.size[0]) if clip else bundle.image_size
    K = np.stack([f.K for f in bundle.frames])
    _setup_scene(scene, bundle, scene_frames, render_size, clip)

    origin = next((b for b in earlier.blocks if is_origin(b)), None)
    new = origin is None
    if new:
        origin = new_origin(name)
    else:
        earlier.keep(origin)
    _link_kept(origin, collection, earlier)
    scale = _scene_scale(points) * world_scale(origin)  # world units: the setup may have scaled the scene
    if options.camera:
        camera = earlier.camera()
        if camera is not None:
            earlier.keep(camera, camera.data)
            _link_kept(camera, collection, earlier)
        made = camera is None
        camera = build_camera(
            f"{name} Camera", np.array(origin.matrix_world) @ camera_matrices, K, bundle.image_size,
            render_size, scene_frames, (0.01 * scale, 100.0 * scale), options.rotation_mode, camera,
            clip.tracking.camera.sensor_width if clip else SENSOR_WIDTH_MM)  # the clip's Camera settings
        if made or (new and camera.parent is None):  # an artist's parent (a rig) is kept
            attach(camera, origin)
        if not camera.users_collection:
            collection.objects.link(camera)
        key_solve_error(camera, bundle.metadata.get("alignment", {}).get("quality"), scene_frames, render_size[1])
        camera.data.dof.focus_distance = scale  # the depth compositing's defocus focuses mid-scene
        scene.camera = camera
        if clip and not any(b.clip == clip for b in camera.data.background_images):
            camera.data.show_background_images = True
            background = camera.data.background_images.new()
            background.source = "MOVIE_CLIP"
            background.clip = clip
    if options.points:
        radius = options.point_radius or _auto_radius(bundle, K, points, _scene_scale(points))
        cloud = build_points(f"{name} Points", points, world, radius, options.confidence_threshold,
                             options.accumulate)
        cloud.parent = origin  # `world` is its matrix in the origin's space
        collection.objects.link(cloud)
    if options.depth:
        matte = load_map_sequence(f"{name} Motion Matte", bundle.frames[0].matte_path) if bundle.has_mattes \
            else None  # bundles written before the motion mattes
        lens = bundle.metadata.get("undistorted")
        lens_uv = lens_uv_image(f"{name} Lens", distortion_uv_map(Lens.from_json(lens))) if lens else None
        wire_compositor(scene, name, depth_composite_group(f"{name} Depth Composite"),
                        load_map_sequence(f"{name} Depth", bundle.frames[0].depth_path), matte,
                        depth_timing(bundle, clip), clip, origin, lens_uv)
        wire_background(scene, name)  # new compositor nodes: a shadow catcher's render goes over the plate
    exclude_from_background(scene, collection)
    return collection


def _link_kept(obj, collection, earlier: replace.SetAside) -> None:
    """A kept object stays where the artist put it; in the earlier import's collection it moves to the new one."""
    if not obj.users_collection or any(c.get(replace.TAG) == earlier.aside for c in obj.users_collection):
        collection.objects.link(obj)


def depth_timing(bundle: Bundle, clip=None) -> SequenceTiming:
    """How the depth image sequence lines up with the scene frames (the bundle's frames are consecutive)."""
    first = bundle.frames[0].frame
    return SequenceTiming(duration=len(bundle.frames), start=first + first_scene_frame(clip), offset=first - 1)


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
    moving = np.empty(total, bool)
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
        moving[start:end] = cloud["moving"] != 0
        bad = ~(np.isfinite(xyz[start:end]).all(axis=1) & np.isfinite(confidence[start:end]))
        if bad.any():
            raise InputError(f"{f.points_path} holds {int(bad.sum())} points with NaN or inf coordinates or "
                             "confidence", "re-run the engine to rewrite the bundle")
    frame = np.repeat(scene_frames.astype(np.int32), [f.num_points for f in bundle.frames])
    return FramePoints(xyz=xyz, color=srgb_to_linear(rgba), confidence=confidence, frame=frame, moving=moving)


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
    """Resolution and frame rate follow the clip (fps_base keeps 23.976 and the like exact); the frame range is
    set after the import (_frame_range)."""
    scene.render.resolution_x = render_size[1]
    scene.render.resolution_y = render_size[0]
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
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
