"""A re-import's new collection takes what the artist set on the earlier import's collection.

The importer rebuilds the collection; the artist's settings on it would go with the earlier one: where it is
linked, its own toggles and custom properties, what the artist put in it, and per view layer its exclude /
holdout / indirect-only / hide. Parallax's own Background view layer is the exception: there the importer's rule
(imports are excluded, shadow_catcher.py) wins over whatever the earlier collection had.
"""

from __future__ import annotations

import bpy

from .replace import SetAside
from .shadow_catcher import background_layer

# The Collection settings an artist sets and the importer never does (all in Blender 4.2 and 5.0).
_SETTINGS = ("hide_render", "hide_select", "hide_viewport", "color_tag", "instance_offset", "lineart_usage",
             "lineart_use_intersection_mask", "lineart_intersection_mask", "use_lineart_intersection_priority",
             "lineart_intersection_priority")
_LAYER_SETTINGS = ("exclude", "holdout", "indirect_only", "hide_viewport")


def carry_collection_edits(earlier: SetAside, new: bpy.types.Collection) -> None:
    """Give `new` (a complete import) what the artist set on the collection of `earlier` (set aside, not yet
    deleted); nothing when the earlier import had no collection. Called only after the import succeeded, once
    `new` holds the importer's own custom properties (those stand: the tag, the source; the notes come after)."""
    old = next((b for b in earlier.blocks if isinstance(b, bpy.types.Collection)), None)
    if old is None:
        return
    for name in _SETTINGS:
        setattr(new, name, getattr(old, name))
    for key in old.keys():
        if key not in new:
            new[key] = old[key]
    for obj in old.objects:  # the artist's objects (the kept camera and origin are linked already)
        if obj not in earlier.blocks and obj.name not in new.objects:
            new.objects.link(obj)
    for child in old.children:  # the artist's collections in it
        if child not in earlier.blocks:
            new.children.link(child)
    _link_where(old, new)
    for scene in bpy.data.scenes:
        ours = background_layer(scene)
        for layer in scene.view_layers:
            for was, now in _layer_pairs(layer.layer_collection, old, new):
                _copy_layer_settings(was, now, top=layer != ours)


def _link_where(old: bpy.types.Collection, new: bpy.types.Collection) -> None:
    """Link `new` wherever `old` is linked (a scene's top, other collections) and nowhere else; left where it is
    when `old` is linked nowhere."""
    parents = [s.collection for s in bpy.data.scenes if old.name in s.collection.children]
    parents += [c for c in bpy.data.collections if old.name in c.children]
    if not parents:
        return
    for parent in parents:
        if new.name not in parent.children:
            parent.children.link(new)
    for parent in [s.collection for s in bpy.data.scenes] + list(bpy.data.collections):
        if parent not in parents and new.name in parent.children:
            parent.children.unlink(new)


def _layer_pairs(layer_collection, old, new):
    """(old's, new's) layer collections under the same parent, everywhere in this view layer's tree."""
    children = {child.collection: child for child in layer_collection.children}
    if old in children and new in children:
        yield children[old], children[new]
    for child in layer_collection.children:
        if child.collection != new:
            yield from _layer_pairs(child, old, new)


def _copy_layer_settings(was, now, top: bool = True) -> None:
    """`was`'s settings onto `now` (the top one only when `top`: in Parallax's layer the importer sets it), and
    so on down the children both hold (the artist's collections, now in both)."""
    if top:
        for name in _LAYER_SETTINGS:
            setattr(now, name, getattr(was, name))
    children = {child.collection: child for child in was.children}
    for child in now.children:
        if child.collection in children:
            _copy_layer_settings(children[child.collection], child)
