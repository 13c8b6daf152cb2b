"""Per-frame keyframes written in bulk (foreach_set), for Blender 4.2 (legacy actions) to 5.x (slotted actions)."""

from __future__ import annotations

import bpy
import numpy as np

_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def new_fcurves(id_block: bpy.types.ID, action_name: str):
    """A fresh action assigned to id_block; returns the F-curve collection to add curves to."""
    anim = id_block.animation_data_create()
    action = bpy.data.actions.new(action_name)
    anim.action = action
    if not hasattr(action, "slots"):  # Blender 4.2-4.3: curves live on the action itself
        return action.fcurves
    # 4.4 and later: curves live in a channel bag of a keyframe strip, for the slot the ID is animated by.
    slot = action.slots.new(id_block.id_type, id_block.name)
    anim.action_slot = slot
    strip = action.layers.new("Layer").strips.new(type="KEYFRAME")
    return strip.channelbag(slot, ensure=True).fcurves


def set_keys(fcurves, data_path: str, index: int, frames: np.ndarray, values: np.ndarray) -> None:
    """Linear keys at frames (float[N], scene frames) with values (float[N]) on data_path[index]."""
    curve = fcurves.new(data_path, index=index)
    keys = curve.keyframe_points
    keys.add(len(frames))
    keys.foreach_set("co", np.column_stack([frames, values]).astype(np.float32).ravel())
    keys.foreach_set("interpolation", np.full(len(frames), _LINEAR, np.int32))
    curve.update()


def fcurves_of(id_block: bpy.types.ID):
    """The F-curve collection of id_block's action (as new_fcurves made it), to add curves to."""
    anim = id_block.animation_data
    if not hasattr(anim.action, "slots"):
        return anim.action.fcurves
    return anim.action.layers[0].strips[0].channelbag(anim.action_slot, ensure=True).fcurves
