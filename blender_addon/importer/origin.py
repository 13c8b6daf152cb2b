"""The import's origin: an empty that the import's camera and points hang under, so the scene setup (Set Origin,
Floor, Scale, X/Y Axis) moves the whole solve by moving it alone, and a re-import, which keys the camera and
places the points in the empty's space, keeps that setup."""

from __future__ import annotations

import bpy
import numpy as np

from .replace import TAG

# On the origin empty: True (its TAG names its import).
ORIGIN = "parallax_origin"


def is_origin(block) -> bool:
    return isinstance(block, bpy.types.Object) and bool(block.get(ORIGIN))


def find_origin(key: str) -> bpy.types.Object | None:
    """Import `key`'s origin empty, None when it has none (imports made before there was one)."""
    return next((obj for obj in bpy.data.objects if obj.get(TAG) == key and obj.get(ORIGIN)), None)


def new_origin(key: str) -> bpy.types.Object:
    """An origin empty for import `key` at the world origin (not linked to a collection yet)."""
    origin = bpy.data.objects.new(f"{key} Origin", None)
    origin.empty_display_type = "ARROWS"
    origin[ORIGIN] = True
    origin[TAG] = key
    return origin


def attach(obj: bpy.types.Object, origin: bpy.types.Object) -> None:
    """Parent obj to origin keeping obj's world matrix (for an origin at the world origin, obj's own matrix
    becomes its matrix in the origin's space as it is)."""
    world = obj.matrix_world.copy()
    obj.parent = origin
    obj.matrix_parent_inverse = origin.matrix_world.inverted()
    obj.matrix_world = world


def ensure_origin(key: str) -> bpy.types.Object:
    """Import `key`'s origin, made for an import that has none: the import's objects without a parent are
    parented to it, where they are (an import made before origins existed)."""
    origin = find_origin(key)
    if origin is not None:
        return origin
    collection = next((c for c in bpy.data.collections if c.get(TAG) == key), None)
    origin = new_origin(key)
    (collection or bpy.context.scene.collection).objects.link(origin)
    for obj in bpy.data.objects:
        if obj.get(TAG) == key and obj is not origin and obj.parent is None:
            attach(obj, origin)
    return origin


def moves_with(obj: bpy.types.Object, origin: bpy.types.Object) -> bool:
    """Whether obj is the origin or hangs under it (directly or through the artist's rig)."""
    while obj is not None:
        if obj == origin:
            return True
        obj = obj.parent
    return False


def world_scale(obj: bpy.types.Object) -> float:
    """The (mean) scale of obj's world matrix: scene units per unit of the import."""
    return float(np.cbrt(abs(np.linalg.det(np.array(obj.matrix_world)[:3, :3]))))
