"""What the imported points modifier shows: the tests of the importer count the points of its evaluated geometry."""

import pytest


def shown_points(scene, obj, frame: int) -> int:
    """Points the object's modifiers output at `frame` (skips the test where Blender cannot read them: before 4.3)."""
    import bpy

    scene.frame_set(frame)
    obj.update_tag()
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    if not hasattr(evaluated, "evaluated_geometry"):
        pytest.skip("reading evaluated geometry needs Blender 4.3 or later")
    geometry = evaluated.evaluated_geometry()
    return len(geometry.pointcloud.points) if geometry.pointcloud else 0
