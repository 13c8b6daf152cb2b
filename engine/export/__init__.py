"""Exports of a bundle to other tools' formats (`python -m engine export`), one module per format.

Each format module defines `write(shot, folder, options: options.ExportOptions) -> str`: it writes into the
(empty, staged) folder and returns one line saying what it wrote. The formats need numpy, OpenCV (frames),
OpenEXR (depth) and `pxr` (USD), never torch; this file imports nothing, so the Blender add-on can list them.
"""

# name: (module, what it writes)
FORMATS = {
    "colmap": (".colmap", "COLMAP sparse model (text and binary) with the frames"),
    "nerfstudio": (".nerfstudio", "nerfstudio / instant-ngp transforms.json with the frames and the cloud"),
    "chan": (".chan", "Nuke .chan camera"),
    "usd": (".usd", "USD stage: camera animation and the cloud"),
    "ply": (".ply", "merged static point cloud (PLY)"),
    "depth": (".depth", "depth EXRs at the plate's resolution"),
    "mattes": (".mattes", "motion mattes: an EXR per frame, 1 where something moves"),
}
