"""Every option of the engine, defined once: typed dataclasses shared by the CLI, the protocol and the add-on.

Each field carries its help and its range, choices or pattern in its metadata (`option`). `add_arguments`
makes a command's argparse flags from the fields, `from_args` reads them back, and `check` refuses a bad
value with an InputError naming the flag, before anything is loaded. Standard library only: the protocol
server and the add-on read this module without torch.
"""

from __future__ import annotations

import argparse
import math
import re
import types
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from .devices import DEVICE_HELP, PRECISION_HELP
from .errors import InputError
from .models import DEFAULT_MODEL, MODELS


def option(default: Any = MISSING, help: str = "", *, low: float | None = None, high: float | None = None,
           exclusive: bool = False, choices: tuple | None = None, pattern: str | None = None, flag: str | None = None,
           positional: bool = False, metavar: Any = None, parse: Any = None, cli: bool = True,
           addon: bool = True, default_factory: Any = MISSING):
    """A dataclass field with what the CLI and `check` need to know about it.

    low, high: the allowed range, both given (inclusive; exclusive=True: open); floats must also be finite.
    choices: the allowed values; pattern: a regular expression a string must match in full.
    flag: the CLI flag (default --name-with-dashes; a `--no-...` flag for a bool that defaults to True);
    positional: a positional CLI argument; parse: turns the CLI text into the value; cli=False: not on the
    command line; addon=False: the Blender add-on has no setting for it and sends the default: only the
    developer switches, ablations and benchmark tuning, each field saying which. Every other reconstruct option
    is both a flag and an add-on setting (tests/test_options.py checks both sides)."""
    meta = {"help": help, "low": low, "high": high, "exclusive": exclusive, "choices": choices, "pattern": pattern,
            "flag": flag, "positional": positional, "metavar": metavar, "parse": parse, "cli": cli, "addon": addon}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def parse_frames(text: str | None) -> tuple[int, int | None]:
    """"A:B" -> (A, B); "A:" -> (A, None); empty -> (0, None)."""
    if not text:
        return 0, None
    try:
        a, b = text.split(":")
        return int(a or 0), (int(b) if b else None)
    except ValueError:
        raise InputError(f"--frames {text!r} is not a range", "write it as A:B, e.g. --frames 0:48") from None


@dataclass
class AlignOptions:
    """Settings of `engine.alignment.align` (docs/alignment.md)."""

    per_frame_focal: str = option("auto", "one focal length per frame (zoom shots: on), one for the clip (off), or "
                                          "per frame when the windows' own focal estimates change over the shot "
                                          "(auto)", choices=("auto", "on", "off"))
    nodal_pan: str = option("auto", "a tripod shot: the camera turns about a fixed pivot, its lens at most 5 %% of "
                                    "the scene's median depth off it (on), moves freely (off), or is taken for a "
                                    "tripod shot when that explains its track to 0.5 %% of the median depth (auto)",
                            choices=("auto", "on", "off"))
    # addon=False: the developer switches (README, "engine-only switches"): ablations of the alignment's
    # parts and the benchmarks' tuning, which an artist has no reason to change.
    use_rays: bool = option(True, "cameras from the point maps instead of the rays (ablation)", flag="--no-rays",
                            addon=False)  # ablation
    use_disparity: bool = option(True, "depth from the point maps only (ablation)", flag="--no-disparity",
                                 addon=False)  # ablation
    robust: bool = option(True, "plain least squares: keep disagreeing windows", flag="--no-robust",
                          addon=False)  # ablation
    smoothness: float = option(30.0, "temporal smoothness of the camera track, 0 = none: a frame's velocity is "
                                     "expected to change by about 1/smoothness of a typical step, in proportion "
                                     "to the windows' disagreement; for cameras from optical flow (a model "
                                     "without rays) 30 smooths as much as the track's own noise calls for and "
                                     "other values scale that", low=0.0, high=1e6)
    pose_pixels: int = option(256, "pixels sampled per frame for the pose solve", low=16, high=65536, cli=False,
                              addon=False)  # benchmark tuning
    outlier_threshold: float = option(3.0, "depth estimates further than this many robust deviations from the "
                                           "median are dropped", low=0.0, high=1e6, exclusive=True, cli=False,
                                      addon=False)  # benchmark tuning
    motion_cameras: bool = option(False, "cameras from optical flow and each frame's point map, as for a model "
                                         "without rays (a cross-check on predictions with rays; the rays are not used)",
                                  addon=False)  # ablation
    # What the artist knows about the camera (Blender: Movie Clip > Camera); docs/alignment.md, known camera data.
    focal: float | None = option(None, "a known focal length in --focal-units, held in the solve (--focal-mode "
                                       "fixed) or a prior it may move from (refine); default: solved from the "
                                       "predictions", low=0.0, high=1e6, exclusive=True)
    focal_units: str = option("mm", "units of --focal: mm on a sensor --sensor-width wide, or pixels of the "
                                    "plate (px)", choices=("mm", "px"))
    sensor_width: float = option(36.0, "the sensor's width in mm, which the plate's width spans (with --focal "
                                       "in mm)", low=0.0, high=1000.0, exclusive=True)
    focal_mode: str = option("fixed", "with --focal: fixed (the solve keeps it) or refine (the windows move it "
                                      "as far as their agreement outweighs --focal-tolerance)",
                             choices=("fixed", "refine"))
    focal_tolerance: float = option(0.05, "refine: how far the known focal may be off, a relative standard "
                                          "deviation (0.05 = 5 %%); its prior weight is 1/tolerance^2 against "
                                          "the windows' own spread", low=0.0, high=10.0, exclusive=True,
                                   addon=False)  # benchmark tuning: Refine's fixed 5 % in the add-on
    principal_point: tuple[float, float] | None = option(None, "a known principal point in plate pixels from "
                                                               "the top-left corner, y down (default the "
                                                               "centre)", metavar=("CX", "CY"))

    def __post_init__(self):
        # Requests written before the three-way choice send a bool: True meant per frame, False one focal.
        if isinstance(self.per_frame_focal, bool):
            self.per_frame_focal = "on" if self.per_frame_focal else "off"
        if self.principal_point is not None:  # JSON gives a list
            self.principal_point = tuple(float(v) for v in self.principal_point)


@dataclass
class BundleOptions:
    """How a reconstruction is written as a bundle (engine.formats.bundle.write_bundle)."""

    point_stride: int = option(2, "keep every k-th pixel in x and y for the point clouds", low=1, high=4096)
    min_confidence: float = option(0.0, "drop points at or below this confidence", low=0.0, high=1e9)
    window_storage: str = option("fp16", "keep the window predictions in the bundle as fp16 (half the disk, "
                                         "re-alignment error in docs/formats.md), fp32, or none (no re-alignment "
                                         "later)", choices=("fp16", "fp32", "none"), flag="--keep-windows")


@dataclass
class ReconstructOptions:
    """A reconstruct job (engine.pipeline.run_reconstruct): the `reconstruct` command's flags, the protocol's
    reconstruct request and the add-on's settings, by the same names."""

    video: Path = option(help="the clip: a video OpenCV reads, or an image sequence (a folder of numbered frames "
                              "or one frame's file; PNG, TIFF, JPEG, BMP, EXR)", positional=True)
    out: Path = option(help="bundle folder to write (replaced only on success)")
    model: str = option(DEFAULT_MODEL, "the geometry model", choices=tuple(MODELS))
    model_dir: Path | None = option(None, "converted model directory (default $PARALLAX_MODEL_DIR or "
                                          "~/.cache/parallax/models/<model>)")
    variant: str | None = option(None, "the model's variant: GeometryCrafter's diff (default) or determ (one "
                                       "step); Geo4D has none", choices=("diff", "determ"))
    stride: int | None = option(None, "frames between window starts, below the model's window length (default: "
                                      "the model's, 4 for Geo4D, 85 for GeometryCrafter)", low=1, high=4096)
    steps: int = option(5, "diffusion steps (default 5, as Geo4D)", low=1, high=1000)
    device: str | None = option(None, DEVICE_HELP, pattern=r"auto|cpu|mps|cuda(:\d+)?")
    precision: str | None = option(None, PRECISION_HELP, choices=("fp32", "fp16", "bf16"))
    runtime: str = option("torch", "the networks' runtime", choices=("torch", "onnx"))
    frames: tuple[int, int | None] = option((0, None), "frame range [A, B) of the clip (0-based)", metavar="A:B",
                                            parse=parse_frames)
    size: tuple[int, int] | None = option(None, "processing size H W, {size_rules}: the converted model's "
                                                "configuration decides (default: the model's training area at "
                                                "the clip's aspect)", metavar=("H", "W"))
    seed: int = option(123, "random seed of the diffusion noise", low=0, high=2**63 - 1)
    window_batch: int = option(1, "windows denoised together", low=1, high=4096)
    point_stride: int = BundleOptions.__dataclass_fields__["point_stride"]  # the same field: one definition
    window_storage: str = BundleOptions.__dataclass_fields__["window_storage"]
    align: AlignOptions = option(help="alignment settings", default_factory=AlignOptions)
    fps: float | None = option(None, "frames per second where the clip stores none: image sequences (default 24)",
                               low=0.0, high=1000.0, exclusive=True)
    distortion_model: str = option("none", "the plate's lens distortion, one of Blender's models (Movie Clip > "
                                           "Camera > Lens): the frames are undistorted before the model, with "
                                           "--focal and --principal-point (docs/alignment.md)",
                                   choices=("none", "polynomial", "division", "nuke", "brown"))
    distortion: tuple[float, ...] = option((), "the distortion model's coefficients: polynomial k1 k2 k3, division "
                                               "k1 k2, nuke k1 k2, brown k1 k2 k3 k4 p1 p2 (p1, p2 in OpenCV's "
                                               "order, y down; a negative one as a decimal, -0.002, not -2e-3, "
                                               "which reads as a flag) (default: none)", metavar="K")

    def __post_init__(self):
        # The protocol server builds options from JSON: null means the default, strings and lists become
        # paths and tuples, and the alignment's object its dataclass.
        for f in fields(self):
            if getattr(self, f.name) is not None:
                continue
            if f.default is not MISSING:
                setattr(self, f.name, f.default)
            elif f.default_factory is not MISSING:
                setattr(self, f.name, f.default_factory())
            else:
                raise InputError(f"the reconstruct option `{f.name}` is missing", f"pass {f.name}")
        self.video = Path(self.video)
        self.out = Path(self.out) if self.out is not None else None  # None: inspect's, which writes nothing
        self.model_dir = Path(self.model_dir) if self.model_dir else None
        start, stop = self.frames
        self.frames = (int(start or 0), None if stop is None else int(stop))
        self.size = tuple(int(v) for v in self.size) if self.size else None
        self.distortion = tuple(float(v) for v in self.distortion)
        if isinstance(self.align, dict):
            unknown = sorted(set(self.align) - {f.name for f in fields(AlignOptions)})
            if unknown:
                raise InputError(f"unknown alignment option(s) {', '.join(unknown)}",
                                 f"use the fields of AlignOptions: {', '.join(f.name for f in fields(AlignOptions))}")
            self.align = AlignOptions(**self.align)




@dataclass
class InspectOptions(ReconstructOptions):
    """What `inspect` reports on: a clip, and the reconstruction of it that these reconstruct options would make
    (the same fields, so a reconstruct command line can be inspected as it is), without an output folder."""

    out: Path | None = option(None, cli=False)
    json: bool = option(False, "print the report as one JSON object")


def flag_of(f) -> str:
    """The CLI flag of field f."""
    if f.metadata.get("flag"):
        return f.metadata["flag"]
    return "--" + f.name.replace("_", "-")


def check(options) -> None:
    """Refuse (InputError naming the flag) a value of a dataclass of options, or of its nested ones, that is out
    of its field's range, not among its choices, not matching its pattern, or a non-finite number."""
    for f in fields(options):
        value = getattr(options, f.name)
        if is_dataclass(value):
            check(value)
            continue
        if value is None or isinstance(value, bool) or not f.metadata:
            continue
        meta, flag = f.metadata, flag_of(f)
        if isinstance(value, tuple) and not all(math.isfinite(v) for v in value if isinstance(v, (int, float))):
            raise InputError(f"{f.name} is {value}; its values must be finite numbers", f"pass {flag} with numbers")
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{f.name} is {value}; it must be a finite number", f"pass {flag} with a number")
        low, high = meta.get("low"), meta.get("high")
        if isinstance(value, (int, float)) and (low is not None or high is not None):
            if meta.get("exclusive"):
                if not low < value < high:
                    raise InputError(f"{f.name} is {value}; it must lie in ({low:g}, {high:g})",
                                     f"pass {flag} with a value in ({low:g}, {high:g})")
            elif not low <= value <= high:
                raise InputError(f"{f.name} is {value}; it must lie in {low:g}..{high:g}",
                                 f"pass {flag} with a value in {low:g}..{high:g}")
        if meta.get("choices") and value not in meta["choices"]:
            raise InputError(f"unknown {f.name} {value!r}", f"pass {flag} {' or '.join(map(str, meta['choices']))}")
        if meta.get("pattern") and not (isinstance(value, str) and re.fullmatch(meta["pattern"], value)):
            raise InputError(f"{f.name} {value!r} is not understood", f"pass {flag} as {f.metadata['help']}")


def help_text(meta) -> str:
    """A field's help, `{size_rules}` filled in from the model registry only here: its packages import numpy,
    which this module must not need (the protocol server imports it to say which packages are missing)."""
    text = meta.get("help", "")
    if "{size_rules}" in text:
        from .models import size_text

        text = text.replace("{size_rules}", size_text())
    return text


def add_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """Add a flag (or positional argument) for every CLI field of dataclass `cls`, nested dataclasses' fields
    flattened in."""
    hints = get_type_hints(cls)
    for f in fields(cls):
        kind = hints[f.name]
        if not f.metadata.get("cli", True):
            continue
        if is_dataclass(kind):
            add_arguments(parser, kind)
            continue
        meta, default = f.metadata, f.default
        text = help_text(meta)
        if meta.get("positional"):
            parser.add_argument(f.name, help=text)
            continue
        names = dict(dest=f.name)
        if default is MISSING and f.default_factory is MISSING:
            names["required"] = True
        if kind is bool:
            parser.add_argument(flag_of(f), action="store_false" if default else "store_true", help=text, **names)
            continue
        base = _scalar(kind)
        extra: dict[str, Any] = {"metavar": meta.get("metavar")}
        if meta.get("choices"):
            extra["choices"] = list(meta["choices"])
        if meta.get("parse"):  # parsed in from_args, where its InputError reaches the user as one line
            default = None
        elif base is tuple:
            extra["type"], extra["nargs"] = _element(kind), "+" if ... in _elements(kind) else 2
        elif base in (int, float):
            extra["type"] = base
        if default is not MISSING and default is not None and "(default" not in text:
            text = f"{text} (default {default})"
        parser.add_argument(flag_of(f), default=None if default is MISSING else default, help=text, **names,
                            **extra)


def from_args(cls, args: argparse.Namespace):
    """An instance of dataclass `cls` from parsed `args` (nested dataclasses too), checked."""
    hints = get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        if is_dataclass(hints[f.name]):
            kwargs[f.name] = from_args(hints[f.name], args)
        elif hasattr(args, f.name):
            value = getattr(args, f.name)
            kwargs[f.name] = f.metadata["parse"](value) if f.metadata.get("parse") else value
    options = cls(**kwargs)
    check(options)
    return options


def to_json(options) -> dict:
    """A dataclass of options as JSON-ready values (paths as strings, tuples as lists)."""
    def plain(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(asdict(options))


def _elements(kind) -> tuple:
    """The element types of a tuple annotation: `tuple[float, float] | None` -> (float, float)."""
    if get_origin(kind) in (Union, types.UnionType):
        kind = next(a for a in get_args(kind) if a is not type(None))
    return get_args(kind)


def _element(kind) -> type:
    """The element type of a tuple annotation: `tuple[float, ...]` -> float."""
    return _elements(kind)[0]


def _scalar(kind) -> type:
    """The type behind an annotation: `int | None` -> int, `tuple[int, int] | None` -> tuple."""
    if get_origin(kind) in (Union, types.UnionType):
        kind = next(a for a in get_args(kind) if a is not type(None))
    return get_origin(kind) or kind
