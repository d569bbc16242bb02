"""Shared test fixtures. GPU tests (`-m gpu`) skip cleanly on machines without CUDA."""

from __future__ import annotations

from pathlib import Path

import pytest

# The fixtures of the support modules (a small ONNX model, a tiny disk, an MQTT broker, a PostgreSQL server, a
# calibration set), for every test module to take by name.
pytest_plugins = ("pipeline_support", "disk_support", "mqtt_broker", "postgres_support", "calibration_support")

FIXTURES = Path(__file__).parent / "fixtures"
UPSTREAM = FIXTURES / "upstream_fume"


def _cuda_available() -> bool:
    """A CUDA device visible to the driver (cuda-python), else to torch: the CPU torch pin must not hide a GPU."""
    try:
        from cuda.bindings import runtime

        error, count = runtime.cudaGetDeviceCount()
        if error == runtime.cudaError_t.cudaSuccess:
            return count > 0
    except ImportError:
        pass
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run with `pytest -m gpu` on one)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def upstream_dir() -> Path:
    return UPSTREAM


@pytest.fixture(scope="session")
def imported_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The research fixture imported once into a fume-edge checkpoint."""
    from fume_edge.model.checkpoint import save_checkpoint
    from fume_edge.deploy.upstream_import import import_research_checkpoint

    result = import_research_checkpoint(UPSTREAM / "upstream_fume_fastscnn_shared.pth")
    return save_checkpoint(result.checkpoint, tmp_path_factory.mktemp("imported") / "upstream.pt")
