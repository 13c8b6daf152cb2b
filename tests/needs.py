"""What some tests need that a lean lane lacks: they skip there with the reason, not fail to import."""

import pytest

NO_TORCH = ("needs PyTorch: the lean Python 3.13 lane (scripts/setup_env.sh py313) has the engine's torch-free "
            "requirements only")


def torch_or_skip():
    """The torch module; at a test module's top, skips the whole module where torch is not installed."""
    return pytest.importorskip("torch", reason=NO_TORCH)
