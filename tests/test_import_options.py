"""`fume-edge import` says what a research checkpoint lacks: options state it, defaults are reported as assumed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fume_edge.deploy.upstream_import import ImportOptions, import_research_checkpoint
from fume_edge.errors import FumeEdgeError
from fume_edge.model.checkpoint import load_checkpoint, load_weights_file


@pytest.fixture(scope="module")
def bare(upstream_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The research fixture's weights alone: no config, so no input size or class names."""
    saved = load_weights_file(upstream_dir / "upstream_fume_fastscnn_shared.pth")
    path = tmp_path_factory.mktemp("bare") / "bare.pth"
    torch.save(saved["model_state_dict"], path)
    return path


def test_defaults_are_reported_as_assumed_and_recorded(bare: Path) -> None:
    result = import_research_checkpoint(bare)
    assert set(result.assumed) == {"input size", "pH class names"}
    assert result.checkpoint.input_size == (640, 480)
    assert result.checkpoint.provenance["assumed"] == ["input size", "pH class names"]


def test_options_state_what_the_checkpoint_lacks(bare: Path) -> None:
    result = import_research_checkpoint(bare, ImportOptions((320, 240), ["normal", "sara", "acidosis"]))
    assert result.assumed == {}
    assert result.checkpoint.input_size == (320, 240)
    assert result.checkpoint.class_names == ["normal", "sara", "acidosis"]
    with pytest.raises(FumeEdgeError, match="--class-names: 2 names given.*3 classes"):
        import_research_checkpoint(bare, ImportOptions(class_names=["a", "b"]))


def test_cli_records_options_prints_assumptions_and_the_next_command(bare: Path, tmp_path: Path) -> None:
    out = tmp_path / "fume.pt"
    done = subprocess.run(
        [sys.executable, "-m", "fume_edge", "import", str(bare), "-o", str(out), "--input-size", "320x240"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "assumed: pH class names" in done.stdout and "--class-names" in done.stdout
    assert "assumed: input size" not in done.stdout
    assert f"next: fume-edge export {out} -o engines/fume.onnx" in done.stdout
    assert load_checkpoint(out).input_size == (320, 240)
