"""Re-import replaces: every data-block an import creates is tagged with its collection's name."""

from __future__ import annotations

import bpy

TAG = "parallax_import"

# The kinds of data-blocks an import creates. Movie clips are not here: the clip is the user's footage.
_KINDS = ("collections", "objects", "meshes", "cameras", "materials", "node_groups", "images", "actions")


def existing_ids() -> set:
    return {block for kind in _KINDS for block in getattr(bpy.data, kind)}


def tag_new(before: set, key: str) -> None:
    """Tag every data-block created since `before` (a set from existing_ids()) as part of import `key`."""
    for block in existing_ids() - before:
        block[TAG] = key


def remove_import(key: str) -> None:
    """Delete every data-block of an earlier import `key` (its collection, objects and their data)."""
    bpy.data.batch_remove([block for block in existing_ids() if block.get(TAG) == key])
