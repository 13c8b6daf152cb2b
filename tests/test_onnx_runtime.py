"""The ONNX Runtime UNet agrees with the torch UNet and with the official fixtures (tiny model).

Tolerance: 5e-5, relative to max(1, |expected|), in float32 (torch reproduces the fixtures bit for
bit on the machine that made them; ONNX Runtime's kernels sum in another order, seen at 5e-6)."""

from __future__ import annotations

import pytest

from tests.needs import torch_or_skip

torch_or_skip()

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from engine.errors import ModelError  # noqa: E402
from engine.models.geo4d.checks import compare, unet_forward  # noqa: E402
from engine.models.geo4d.onnx_backend import OnnxUNet, cached_export, execution_providers  # noqa: E402
from tests.fixture_paths import GEO4D_FIXTURES, requires_geo4d_fixtures  # noqa: E402

FIXTURES = GEO4D_FIXTURES
pytestmark = requires_geo4d_fixtures
TOLERANCE = 5e-5


@pytest.fixture(scope="module")
def unet(tiny_config):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return unet_forward.load_tiny_unet(FIXTURES, tiny_config)


@pytest.fixture(scope="module")
def exported(unet, tmp_path_factory):
    """(path, model folder) of the tiny UNet exported through the cache."""
    model_dir = tmp_path_factory.mktemp("model")
    (model_dir / "unet.safetensors").write_bytes(b"stands for the converted weights: only its size and time count")
    return cached_export("unet", unet, model_dir, model_dir / "onnx"), model_dir


@pytest.fixture(scope="module")
def onnx_unet(exported):
    return OnnxUNet(exported[0], "cpu")


def test_onnx_unet_reproduces_the_official_fixture(onnx_unet):
    data = load_file(FIXTURES / unet_forward.FIXTURE)
    for case in ("caseA", "caseB"):
        out = onnx_unet(data[f"{case}.x_in"], data[f"{case}.t"], data[f"{case}.context"], data[f"{case}.fs"])
        result = compare(case, out, data[f"{case}.out"], TOLERANCE)
        assert result.ok, result


@torch.no_grad()
def test_onnx_and_torch_agree_on_other_batch_frame_and_latent_sizes(onnx_unet, unet):
    generator = torch.Generator().manual_seed(7)
    b, t, h, w = 2, 8, 4, 8
    x = torch.randn(b, 20, t, h, w, generator=generator)
    timesteps, fs = torch.tensor([999, 37]), torch.tensor([24, 3])
    context = torch.randn(b, 77 + 16 * t, 16, generator=generator)
    ours = onnx_unet(x, timesteps, context, fs)
    assert ours.shape == (b, 16, t, h, w) and ours.dtype == torch.float32
    result = compare("b2 t8 4x8", ours, unet(x, timesteps, context, fs), TOLERANCE)
    assert result.ok, result


def test_export_is_cached_and_leaves_only_its_files(unet, exported):
    path, model_dir = exported
    mtime = path.stat().st_mtime_ns
    assert cached_export("unet", unet, model_dir, path.parent) == path
    assert path.stat().st_mtime_ns == mtime  # reused, not exported again
    assert sorted(p.name for p in path.parent.iterdir()) == ["unet-float32.json", "unet-float32.onnx"]


def test_a_broken_onnx_file_is_a_model_error(tmp_path):
    broken = tmp_path / "unet.onnx"
    broken.write_bytes(b"not a protobuf")
    with pytest.raises(ModelError, match="cannot load"):
        OnnxUNet(broken)
    with pytest.raises(ModelError, match="does not exist"):
        OnnxUNet(tmp_path / "missing.onnx")


def test_gpu_without_the_cuda_provider_is_a_model_error():
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert execution_providers("cuda")[0] == "CUDAExecutionProvider"
    else:
        with pytest.raises(ModelError, match="onnxruntime-gpu"):
            execution_providers("cuda")
    assert execution_providers("cpu") == ["CPUExecutionProvider"]


def test_bfloat16_and_unwritable_cache_are_model_errors(unet, exported, tiny_config, tmp_path):
    model_dir = exported[1]
    with pytest.raises(ModelError, match="float32 or float16"):
        cached_export("unet", unet_forward.load_tiny_unet(FIXTURES, tiny_config).to(torch.bfloat16),
                      model_dir, tmp_path)
    with pytest.raises(ModelError, match="vae.safetensors is missing"):
        cached_export("vae-decoder", unet, model_dir, tmp_path)
    blocker = tmp_path / "a file"
    blocker.write_text("")
    with pytest.raises(ModelError, match="cannot write the ONNX export"):
        cached_export("unet", unet, model_dir, blocker / "onnx")
    assert not list(tmp_path.glob("**/*.onnx"))


@pytest.fixture
def split_export(exported, tmp_path_factory):
    """The tiny UNet's graph as the exporter writes a model over 2 GB: every initializer of 1 KiB and
    more in an external file of its own beside the graph (node attributes stay in the graph)."""
    import onnx

    split = tmp_path_factory.mktemp("split") / "unet.onnx"
    onnx.save_model(onnx.load(str(exported[0])), str(split), save_as_external_data=True,
                    all_tensors_to_one_file=False, size_threshold=1024)
    return split


def _run(path, feeds):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_streamed_gathering_gives_one_valid_data_file_and_the_old_paths_outputs(split_export, tmp_path):
    import numpy as np
    import onnx

    from engine.models.geo4d.onnx_export import gather_external_data

    parts = [p for p in split_export.parent.iterdir() if p != split_export]
    assert len(parts) > 50  # the tiny UNet's tensors, one file each
    # The old way: onnx.load reads every tensor into memory, save_model writes them into one file.
    old = tmp_path / "old" / "unet.onnx"
    old.parent.mkdir()
    onnx.save_model(onnx.load(str(split_export)), str(old), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="unet.onnx.data")
    new = tmp_path / "new" / "unet.onnx"
    new.parent.mkdir()
    gather_external_data(split_export, new, "unet.onnx.data")

    assert sorted(p.name for p in new.parent.iterdir()) == ["unet.onnx", "unet.onnx.data"]
    assert not any(p.exists() for p in parts)  # the exporter's scratch files are consumed
    assert (new.with_name("unet.onnx.data").stat().st_size
            >= old.with_name("unet.onnx.data").stat().st_size > new.stat().st_size)
    onnx.checker.check_model(str(new))  # by path: checks every tensor's location in the data file
    generator = np.random.default_rng(3)
    t = 4
    feeds = {"x": generator.standard_normal((1, 20, t, 4, 8), dtype=np.float32),
             "timesteps": np.array([500]), "context": generator.standard_normal((1, 77 + 16 * t, 16), dtype=np.float32),
             "fs": np.array([10])}
    (ours,), (theirs,) = _run(new, feeds), _run(old, feeds)
    assert ours.shape == (1, 16, t, 4, 8) and np.abs(ours).max() > 0
    np.testing.assert_array_equal(ours, theirs)


def test_a_short_exporter_weights_file_is_a_model_error(split_export, tmp_path):
    from engine.models.geo4d.onnx_export import gather_external_data

    largest = max((p for p in split_export.parent.iterdir() if p != split_export), key=lambda p: p.stat().st_size)
    largest.write_bytes(largest.read_bytes()[:-4])
    with pytest.raises(ModelError, match="shorter than its graph says"):
        gather_external_data(split_export, tmp_path / "unet.onnx", "unet.onnx.data")
