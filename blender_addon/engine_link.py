"""The add-on's one door to the engine's code: its error types, its options, the bundle and image-sequence
formats, the protocol's version, the export formats' names and the model registry (names, labels, licences,
processing-size rules).

Installed, the extension carries the engine as its sub-package `engine` (build_addon.py puts it there); in
a checkout the add-on uses the repository's `engine` package, beside this folder. Either way the engine is
imported once, under one name, and only its standard-library and numpy modules (engine.errors,
engine.options, engine.formats, engine.clips.lens (the lens of an undistorted solve), engine.protocol.messages,
engine.export's list, engine.reporting (frame lists, frame numbers, plate pixels), the registry of engine.models
with each model package's torch-free constants): Blender's Python has no torch, scipy or OpenCV, and OpenEXR loads
only to read an EXR.
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent

if (_HERE / "engine" / "__init__.py").is_file():  # the installed extension
    from .engine.clips.lens import Lens, distortion_uv_map
    from .engine.errors import EngineError, InputError
    from .engine.export import FORMATS as EXPORT_FORMATS
    from .engine.formats.bundle import Bundle, read_bundle
    from .engine.formats.exr import check_depth_exr
    from .engine.formats.matte import check_matte_exr
    from .engine.formats.sequence import find_sequence
    from .engine.models import MODELS, model_package, size_text
    from .engine.options import AlignOptions, ReconstructOptions
    from .engine.options import to_json as options_json
    from .engine.protocol.messages import PROTOCOL_VERSION
    from .engine.reporting import FIRST_FRAME, frame_spans, plate_pixels
else:  # a checkout: the repository root holds the engine
    if str(_HERE.parent) not in sys.path:
        sys.path.append(str(_HERE.parent))
    from engine.clips.lens import Lens, distortion_uv_map
    from engine.errors import EngineError, InputError
    from engine.export import FORMATS as EXPORT_FORMATS
    from engine.formats.bundle import Bundle, read_bundle
    from engine.formats.exr import check_depth_exr
    from engine.formats.matte import check_matte_exr
    from engine.formats.sequence import find_sequence
    from engine.models import MODELS, model_package, size_text
    from engine.options import AlignOptions, ReconstructOptions
    from engine.options import to_json as options_json
    from engine.protocol.messages import PROTOCOL_VERSION
    from engine.reporting import FIRST_FRAME, frame_spans, plate_pixels

__all__ = ["AlignOptions", "Bundle", "EXPORT_FORMATS", "EngineError", "FIRST_FRAME", "InputError", "Lens", "MODELS",
           "PROTOCOL_VERSION", "ReconstructOptions", "check_depth_exr", "check_matte_exr", "distortion_uv_map",
           "find_sequence", "frame_spans", "model_package", "options_json", "plate_pixels", "read_bundle",
           "size_text"]
