"""Options are defined once (engine/options.py): the CLI flags come from the fields, bad values are refused
before anything loads, the protocol builds and checks the nested options, and the add-on's request uses the
fields' names."""

import argparse
import ast
import math
from dataclasses import fields
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import InputError
from engine.options import (AlignOptions, BundleOptions, ReconstructOptions, add_arguments, check, from_args,
                            to_json)
from engine.protocol.messages import AlignRequest, ProtocolError, build

ROOT = Path(__file__).resolve().parents[1]


def _parser(cls) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser, cls)
    return parser


def test_reconstruct_has_a_flag_for_every_option():
    dests = {action.dest for action in _parser(ReconstructOptions)._actions} - {"help"}
    cli_fields = {f.name for f in fields(ReconstructOptions) if f.name != "align"}
    cli_fields |= {f.name for f in fields(AlignOptions) if f.metadata["cli"]}
    assert dests == cli_fields
    args = _parser(ReconstructOptions).parse_args(["clip.mp4", "--out", "b", "--per-frame-focal", "on", "--no-rays",
                                                    "--frames", "3:9", "--size", "64", "128", "--fps", "25"])
    options = from_args(ReconstructOptions, args)
    assert options.align.per_frame_focal == "on" and not options.align.use_rays and options.align.use_disparity
    assert options.frames == (3, 9) and options.size == (64, 128) and options.fps == 25.0
    assert options.video == Path("clip.mp4") and options.point_stride == 2 and options.model == "geo4d"


@pytest.mark.parametrize("flags, named", [
    (["--point-stride", "0"], "--point-stride"),
    (["--smoothness", "nan"], "--smoothness"),
    (["--device", "tpu"], "--device"),
    (["--steps", "0"], "--steps"),
    (["--fps", "0"], "--fps"),
    (["--frames", "3-9"], "--frames"),
])
def test_bad_values_are_refused_before_anything_loads(flags, named, tmp_path, capsys):
    # The model folder does not exist: reaching the model would fail differently.
    code = main(["reconstruct", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "b"),
                 "--model-dir", str(tmp_path / "no-model"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and named in err and "fix:" in err and "no-model" not in err, err
    assert not list(tmp_path.iterdir())


def test_align_command_refuses_bad_values(tmp_path, capsys):
    code = main(["align", str(tmp_path / "w.npz"), "--out", str(tmp_path / "b"), "--smoothness", "-1"])
    assert code == 2 and "smoothness is -1.0; it must lie in 0..1e+06" in capsys.readouterr().err


def test_point_stride_is_one_field_with_one_default():
    field = BundleOptions.__dataclass_fields__["point_stride"]
    assert ReconstructOptions.__dataclass_fields__["point_stride"] is field
    assert AlignRequest.__dataclass_fields__["point_stride"] is field
    assert field.default == 2 and AlignRequest("a", "w", "o").point_stride == 2
    assert _parser(BundleOptions).parse_args([]).point_stride == 2


def test_protocol_builds_and_checks_nested_options():
    options = build(ReconstructOptions, {"video": "a.mp4", "out": "b", "size": [64, 128], "frames": [2, None],
                                         "align": {"per_frame_focal": True}, "device": None})
    assert isinstance(options.align, AlignOptions) and options.align.per_frame_focal == "on"  # an older bool
    assert options.size == (64, 128) and options.frames == (2, None) and options.device is None
    assert build(ReconstructOptions, to_json(options)) == options  # the request round-trips
    with pytest.raises(ProtocolError, match="smoothness is nan"):
        build(ReconstructOptions, {"video": "a.mp4", "out": "b", "align": {"smoothness": math.nan}})
    with pytest.raises(InputError, match="unknown alignment option.*bogus"):
        build(ReconstructOptions, {"video": "a.mp4", "out": "b", "align": {"bogus": 1}})
    with pytest.raises(ProtocolError, match="point_stride is 0"):
        build(AlignRequest, {"id": "a", "windows": "w", "out": "o", "point_stride": 0})
    with pytest.raises(InputError, match="unknown runtime 'tensorrt'"):
        check(ReconstructOptions(video="a", out="b", runtime="tensorrt"))


def _addon_request() -> dict[str, set[str]]:
    """The names blender_addon/reconstruct.py's request passes to ReconstructOptions(...) and AlignOptions(...)."""
    tree = ast.parse((ROOT / "blender_addon" / "reconstruct.py").read_text())
    calls: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("ReconstructOptions", "AlignOptions"):
            calls.setdefault(node.func.id, set()).update(k.arg for k in node.keywords)
    return calls


def test_the_addon_request_uses_the_option_names():
    """Every keyword the add-on's request passes is a field of those dataclasses (a misspelt name would also fail
    when it runs)."""
    calls = _addon_request()
    assert set(calls) == {"ReconstructOptions", "AlignOptions"}
    assert calls["ReconstructOptions"] <= {f.name for f in fields(ReconstructOptions)}
    assert calls["AlignOptions"] <= {f.name for f in fields(AlignOptions)}
    # What the add-on sets is what its panel and preferences offer: the clip, the model and its variant, the
    # quality preset, the density, zoom and tripod shots, the clip's camera, the device, precision, runtime and
    # window batch, and the Advanced panel's seed, kept windows and smoothness.
    assert {"video", "out", "model", "model_dir", "variant", "device", "precision", "runtime", "window_batch", "seed",
            "stride", "steps", "size", "frames", "point_stride", "window_storage", "align", "fps", "distortion_model",
            "distortion"} == calls["ReconstructOptions"]
    assert calls["AlignOptions"] == {"per_frame_focal", "nodal_pan", "smoothness", "focal", "focal_units",
                                     "sensor_width", "focal_mode", "principal_point"}


def test_the_cli_and_the_addon_expose_the_same_reconstruct_options():
    """Every reconstruct option is a flag of `reconstruct` and is set by the add-on's request, unless its definition
    says the add-on leaves it to the engine (addon=False: ablations, benchmarks, tuning); fails naming each option
    missing on one side."""
    from engine.commands import reconstruct

    parser = argparse.ArgumentParser()
    reconstruct.add_arguments(parser)
    flags = {action.dest for action in parser._actions}
    addon = _addon_request()
    problems = []
    for cls in (ReconstructOptions, AlignOptions):
        for f in fields(cls):
            if f.name == "align":
                continue  # AlignOptions' fields, checked one by one
            meta, on_cli, in_addon = f.metadata, f.name in flags, f.name in addon[cls.__name__]
            if meta["cli"] and not on_cli:
                problems.append(f"{f.name}: no flag of `reconstruct`")
            if meta["addon"] and not in_addon:
                problems.append(f"{f.name}: not in the add-on's request (blender_addon/reconstruct.py)")
            if in_addon and not meta["addon"]:
                problems.append(f"{f.name}: the add-on sets it, but its definition says addon=False")
            if in_addon and not on_cli:
                problems.append(f"{f.name}: the add-on sets it, the command line cannot")
    assert not problems, problems
    # What the add-on leaves to the engine is only the developer switches: the ablations and benchmark tuning.
    engine_only = {f.name for cls in (ReconstructOptions, AlignOptions) for f in fields(cls) if not f.metadata["addon"]}
    assert engine_only == {"use_rays", "use_disparity", "robust", "motion_cameras", "pose_pixels", "outlier_threshold",
                           "focal_tolerance"}
    # The example: the add-on's Zoom Shot (and Tripod) are flags of the command too.
    assert {"per_frame_focal", "nodal_pan"} <= flags & addon["AlignOptions"]
