"""Scene setup, as the Movie Clip Editor's Set Origin / Set Floor / Set Scale / Set X Axis / Set Y Axis do for
Blender's own solve: each operator moves the import's origin empty (origin.py), and with it the camera and the
points, by one rigid (or uniformly scaling) transform of the world. A re-import keeps the empty, so the setup
stays.

Which import: the active object's, else the scene camera's. The points an operator measures: the selected
vertices of the import's points (in Edit Mode), else the world locations of the selected objects (empties
placed on features, say) that are not the import's own."""

from __future__ import annotations

import math

import bpy
import numpy as np
from bpy.props import EnumProperty, FloatProperty
from mathutils import Matrix

from ..errors import InputError
from .floor import fit_floor, fit_plane, level_on
from .origin import ensure_origin, find_origin, moves_with
from .replace import TAG

# Two picked points closer than this (scene units) give no scale; a point this close to the Z axis no direction.
_TINY = 1e-9


def active_import(context) -> str:
    """The key of the import the setup acts on: the active object's, else the scene camera's."""
    for obj in (context.active_object, context.scene.camera):
        if obj is not None and obj.get(TAG):
            return str(obj[TAG])
    raise InputError("no Parallax import to set up: the active object and the scene camera belong to none",
                     "select an object of the import (its camera, points or origin)")


def _import_objects(key: str) -> list:
    return [obj for obj in bpy.data.objects if obj.get(TAG) == key]


def picked_points(context, key: str) -> tuple[np.ndarray, str]:
    """float64[N, 3] world positions the artist picked, and what they are ("points" or "objects")."""
    obj = context.active_object
    if obj is not None and obj.mode == "EDIT":
        if obj.type != "MESH" or obj.get(TAG) != key:
            raise InputError(f"{obj.name} is in Edit Mode but is not the import's points",
                             "leave Edit Mode, or select points of the import's points object")
        obj.update_from_editmode()
        mesh = obj.data
        selected = np.zeros(len(mesh.vertices), bool)
        mesh.vertices.foreach_get("select", selected)
        xyz = np.zeros(len(mesh.vertices) * 3, np.float32)
        mesh.vertices.foreach_get("co", xyz)
        xyz = xyz.reshape(-1, 3)[selected].astype(np.float64)
        world = np.array(obj.matrix_world)
        return xyz @ world[:3, :3].T + world[:3, 3], "points"
    objects = [o for o in context.selected_objects if o.get(TAG) != key]
    return np.array([np.array(o.matrix_world.translation) for o in objects]).reshape(-1, 3), "objects"


def _need(points: np.ndarray, what: str, count: int, purpose: str) -> None:
    if len(points) != count:
        raise InputError(f"{purpose} takes exactly {count} selected point{'s' * (count > 1)} or "
                         f"object{'s' * (count > 1)}, {_count(len(points), what)} selected",
                         f"select {count} of the import's points in Edit Mode, or {count} objects (e.g. empties "
                         "placed on features)")


def _count(n: int, what: str) -> str:
    """"1 point", "2 objects" (what: "points" or "objects")."""
    return f"{n} {what if n != 1 else what[:-1]}"


def translation(offset: np.ndarray) -> np.ndarray:
    transform = np.eye(4)
    transform[:3, 3] = offset
    return transform


def scaling(a: np.ndarray, b: np.ndarray, distance: float) -> np.ndarray:
    """Uniform scale about the world origin making points a and b (float[3]) `distance` apart."""
    now = float(np.linalg.norm(np.asarray(b) - np.asarray(a)))
    if now < _TINY:
        raise InputError("the two picked points are at the same place", "pick two points apart")
    return np.diag([distance / now] * 3 + [1.0])


def turning(point: np.ndarray, axis: str) -> np.ndarray:
    """Rotation about world Z putting point's horizontal direction from the world origin on +X or +Y."""
    x, y = float(point[0]), float(point[1])
    if math.hypot(x, y) < _TINY:
        raise InputError("the picked point is straight above or below the origin, so it gives no direction",
                         "pick a point away from the origin's vertical")
    angle = (0.0 if axis == "X" else math.pi / 2) - math.atan2(y, x)
    c, s = math.cos(angle), math.sin(angle)
    transform = np.eye(4)
    transform[:2, :2] = [[c, -s], [s, c]]
    return transform


def _camera(key: str):
    return next((o for o in _import_objects(key) if o.type == "CAMERA"), None)


def apply_setup(key: str, transform: np.ndarray) -> bpy.types.Object:
    """Move import `key`'s origin (made if it has none) by `transform` (float64[4, 4], world space); refuses
    (InputError, nothing changed) when the import's camera would stay behind."""
    origin = find_origin(key)
    camera = _camera(key)
    left = camera is not None and (camera.parent is not None if origin is None else not moves_with(camera, origin))
    if left:
        by = f"parented to {camera.parent.name}, which does not hang" if camera.parent else "not"
        raise InputError(f"{camera.name} is {by} under the import's origin: the setup would leave the camera "
                         "behind", f"parent {camera.parent.name if camera.parent else camera.name} to "
                         f"{origin.name if origin else 'the origin'}")
    origin = ensure_origin(key)
    origin.matrix_world = Matrix(transform.tolist()) @ origin.matrix_world
    bpy.context.view_layer.update()
    return origin


def cloud_points(key: str) -> np.ndarray:
    """float64[P, 3] world positions of all of import `key`'s points (every frame's)."""
    clouds = [o for o in _import_objects(key) if o.type == "MESH" and len(o.data.vertices)]
    if not clouds:
        raise InputError("the import has no points to find the floor in",
                         "re-import with points, or select points on the floor")
    if clouds[0].mode == "EDIT":
        clouds[0].update_from_editmode()
    mesh, world = clouds[0].data, np.array(clouds[0].matrix_world)
    xyz = np.zeros(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", xyz)
    return xyz.reshape(-1, 3).astype(np.float64) @ world[:3, :3].T + world[:3, 3]


def floor_of(context, key: str, source: str) -> np.ndarray:
    """The transform levelling the found floor (all the import's points) or the selected points' plane."""
    if source == "FOUND":
        return fit_floor(cloud_points(key))
    points, what = picked_points(context, key)
    if len(points) < 3:
        raise InputError(f"Set Floor needs 3 or more selected points or objects, {_count(len(points), what)} "
                         "selected",
                         "select points on the floor (Edit Mode on the import's points), or use the found floor")
    centre, normal = fit_plane(points)
    camera = _camera(key)
    if camera is not None and np.dot(np.array(camera.matrix_world.translation) - centre, normal) < 0:
        normal = -normal  # up is the side the camera is on
    return level_on(centre, normal)


class SetupOperator:
    """An undoable operator on the active import (`setup(context, key)` returns what it did); bad input is
    refused with InputError's problem and fix, nothing changed."""

    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        editing = context.active_object is not None and context.active_object.mode == "EDIT"
        try:
            key = active_import(context)
            done = self.setup(context, key)
        except InputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if editing:  # an Edit Mode undo step holds the mesh only, not the origin's move: undo needs the scene's
            bpy.ops.object.mode_set(mode="OBJECT")
            done += " (left Edit Mode, so that Undo restores it)"
        self.report({"INFO"}, done)
        return {"FINISHED"}


class PARALLAX_OT_set_origin(SetupOperator, bpy.types.Operator):
    """Move the import so that the 3D cursor or the selected points' centre is the world origin"""

    bl_idname = "parallax.set_origin"
    bl_label = "Set Origin"
    source: EnumProperty(name="Source", items=[
        ("SELECTED", "Selected", "The centre of the selected points (Edit Mode) or objects"),
        ("CURSOR", "3D Cursor", "The 3D cursor")], default="SELECTED")

    def setup(self, context, key):
        if self.source == "CURSOR":
            point = np.array(context.scene.cursor.location)
        else:
            points, what = picked_points(context, key)
            if not len(points):
                raise InputError("Set Origin needs selected points or objects, none selected",
                                 "select points of the import (Edit Mode) or objects, or use the 3D cursor")
            point = points.mean(axis=0)
        apply_setup(key, translation(-point))
        return f"Origin of {key} set"


class PARALLAX_OT_set_floor(SetupOperator, bpy.types.Operator):
    """Level the import on a floor: the plane becomes z = 0, its normal up"""

    bl_idname = "parallax.set_floor"
    bl_label = "Set Floor"
    source: EnumProperty(name="Floor", items=[
        ("FOUND", "Found Floor", "The dominant near-horizontal plane of the import's points"),
        ("SELECTED", "Selected", "The plane through the selected points (Edit Mode) or objects, 3 or more")],
        default="FOUND")

    def setup(self, context, key):
        apply_setup(key, floor_of(context, key, self.source))
        return f"Floor of {key} set"


class PARALLAX_OT_set_scale(SetupOperator, bpy.types.Operator):
    """Scale the import so that two selected points (or objects) are the given distance apart"""

    bl_idname = "parallax.set_scale"
    bl_label = "Set Scale"
    distance: FloatProperty(name="Distance", description="The real distance between the two points",
                            default=1.0, min=1e-6, subtype="DISTANCE", unit="LENGTH")

    def setup(self, context, key):
        points, what = picked_points(context, key)
        _need(points, what, 2, "Set Scale")
        transform = scaling(points[0], points[1], self.distance)
        camera = _camera(key)
        apply_setup(key, transform)
        if camera is not None:  # clipping and focus are world distances, not scaled with the camera object
            factor = float(transform[0, 0])
            camera.data.clip_start *= factor
            camera.data.clip_end *= factor
            camera.data.dof.focus_distance *= factor
        note = "" if what == "points" else " (the selected objects stay where they are)"
        return f"Scale of {key} set{note}"


class _SetAxis(SetupOperator):
    axis = "X"

    def setup(self, context, key):
        points, what = picked_points(context, key)
        _need(points, what, 1, f"Set {self.axis} Axis")
        apply_setup(key, turning(points[0], self.axis))
        return f"{self.axis} axis of {key} set"


class PARALLAX_OT_set_x_axis(_SetAxis, bpy.types.Operator):
    """Turn the import about Z so that the selected point (or object) lies along +X from the origin"""

    bl_idname = "parallax.set_x_axis"
    bl_label = "Set X Axis"
    axis = "X"


class PARALLAX_OT_set_y_axis(_SetAxis, bpy.types.Operator):
    """Turn the import about Z so that the selected point (or object) lies along +Y from the origin"""

    bl_idname = "parallax.set_y_axis"
    bl_label = "Set Y Axis"
    axis = "Y"


def draw_setup(layout, context) -> None:
    """The Scene Setup buttons."""
    col = layout.column(align=True)
    row = col.row(align=True)
    row.operator(PARALLAX_OT_set_origin.bl_idname, text="Origin to Selected").source = "SELECTED"
    row.operator(PARALLAX_OT_set_origin.bl_idname, text="Origin to Cursor").source = "CURSOR"
    row = col.row(align=True)
    row.operator(PARALLAX_OT_set_floor.bl_idname, text="Floor: Found").source = "FOUND"
    row.operator(PARALLAX_OT_set_floor.bl_idname, text="Floor: Selected").source = "SELECTED"
    col.operator(PARALLAX_OT_set_scale.bl_idname)
    row = col.row(align=True)
    row.operator(PARALLAX_OT_set_x_axis.bl_idname)
    row.operator(PARALLAX_OT_set_y_axis.bl_idname)
    layout.operator("parallax.add_shadow_catcher", icon="MATSHADERBALL")


classes = (PARALLAX_OT_set_origin, PARALLAX_OT_set_floor, PARALLAX_OT_set_scale, PARALLAX_OT_set_x_axis,
           PARALLAX_OT_set_y_axis)
