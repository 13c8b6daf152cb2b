"""Blender-side scripts (they import bpy) that render synthetic ground-truth scenes for the engine's tests."""
