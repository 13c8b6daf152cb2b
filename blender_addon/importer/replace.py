"""Re-import replaces: every data-block an import creates is tagged with its collection's name.

A re-import first sets the earlier import aside (renamed and tagged apart, still whole), builds the new one,
and only then deletes the earlier one; a failure deletes what was built and puts the earlier one back.
"""

from __future__ import annotations

import bpy

TAG = "parallax_import"
# The clip (or bundle) an import came from, on its collection: two clips with the same file name get two imports.
SOURCE = "parallax_source"

# The kinds of data-blocks an import creates. Movie clips are not here: the clip is the user's footage.
_KINDS = ("collections", "objects", "meshes", "cameras", "materials", "node_groups", "images", "actions")
_ASIDE = " (replaced)"


def existing_ids() -> set:
    return {block for kind in _KINDS for block in getattr(bpy.data, kind)}


def tag_new(before: set, key: str) -> None:
    """Tag every data-block created since `before` (a set from existing_ids()) as part of import `key`."""
    for block in existing_ids() - before:
        block[TAG] = key


def remove_import(key: str) -> None:
    """Delete every data-block of an earlier import `key` (its collection, objects and their data)."""
    bpy.data.batch_remove([block for block in existing_ids() if block.get(TAG) == key])


def import_key(source: str, stem: str) -> str:
    """The name (and tag) of the import of `source`: the one an earlier import of it has, else `stem`, else
    `stem 2`, `stem 3`, ... (a name that no collection and no other import uses)."""
    for collection in bpy.data.collections:
        if collection.get(SOURCE) == source and collection.get(TAG):
            return collection[TAG]
    tags = {block.get(TAG) for block in existing_ids()}
    for k in range(1, 10000):
        name = stem if k == 1 else f"{stem} {k}"
        if name not in bpy.data.collections and name not in tags:
            return name
    raise RuntimeError(f"no free import name for {stem}")  # ten thousand imports of one name: not reachable


class SetAside:
    """An earlier import `key` renamed and re-tagged out of the way (its compositor nodes too)."""

    def __init__(self, key: str):
        self.key = key
        self.aside = key + _ASIDE
        self.blocks = {block: block.name for block in existing_ids() if block.get(TAG) == key}
        self.nodes = {(tree, node): node.name for tree in _compositor_trees() for node in tree.nodes
                      if node.get(TAG) == key}
        self.kept: dict = {}  # blocks the new import updates in place: {block: its animation before}
        for block in self.blocks:
            block[TAG] = self.aside
            block.name = block.name + _ASIDE
        for _tree, node in self.nodes:
            node[TAG] = self.aside
            node.name = node.name + _ASIDE

    def camera(self):
        """The earlier import's camera object, to update in place (None if it had none)."""
        return next((b for b in self.blocks if isinstance(b, bpy.types.Object) and b.type == "CAMERA"), None)

    def keep(self, *blocks) -> None:
        """Blocks of the earlier import that the new one updates in place (the camera and its data): they get
        their names back, are never deleted, and get their animation back if the new import fails. They stay
        tagged aside until discard(), so cleaning up a failed import leaves them alone."""
        for block in blocks:
            if block in self.blocks:  # not camera data the artist gave the camera
                block.name = self.blocks[block]
            anim = getattr(block, "animation_data", None)  # images have none
            self.kept[block] = (anim.action, getattr(anim, "action_slot", None)) if anim else (None, None)

    def discard(self) -> None:
        """The new import succeeded: delete the earlier one (but what was kept, now the new import's)."""
        for tree, node in self.nodes:
            tree.nodes.remove(node)
        for block in self.kept:
            if block in self.blocks:
                block[TAG] = self.key
        bpy.data.batch_remove([block for block in self.blocks if block not in self.kept])

    def restore(self) -> None:
        """The new import failed (and was removed): give the earlier one its names, tags and animation back."""
        for block, (action, slot) in self.kept.items():
            if action is not None:
                block.animation_data.action = action
                if slot is not None:
                    block.animation_data.action_slot = slot
        for block, name in self.blocks.items():
            block[TAG] = self.key
            block.name = name
        for (_tree, node), name in self.nodes.items():
            node[TAG] = self.key
            node.name = name


def _compositor_trees() -> list:
    from .depth import compositor_tree

    return [tree for tree in map(compositor_tree, bpy.data.scenes) if tree is not None]
