"""Parallax engine: turns footage into cameras, depth and point clouds.

Runs as its own process (never inside Blender). Coordinates are OpenCV throughout:
x right, y down, z forward; world = the first camera of the clip.
"""

__version__ = "0.1.0"
