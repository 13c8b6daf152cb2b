"""Files the engine and Blender share: the bundle, PLY, depth EXR, image-sequence naming, atomic writes."""
