"""Export size rule: the deployment size (`--size`, else 640×480), never a flag the user did not pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fume_edge.deploy.onnx.commands import DEPLOY_SIZE, export_size
from fume_edge.errors import FumeEdgeError
from fume_edge.model.checkpoint import Checkpoint, save_checkpoint
from fume_edge.model.registry import create_model
from fume_edge.runtime.pre import Preprocessing


def test_default_is_the_deployment_size_and_sizes_are_multiples_of_32() -> None:
    assert export_size(None) == DEPLOY_SIZE == (640, 480)
    assert export_size((320, 256)) == (320, 256)
    with pytest.raises(FumeEdgeError, match="--size 320x240: .*multiples of 32"):
        export_size((320, 240))


def test_model_trained_at_320x240_exports_at_640x480_with_a_note(tmp_path: Path) -> None:
    """The bundled recipe's first stage trains at 320×240; exporting it needs no flag and says what changed."""
    torch.manual_seed(0)
    model = create_model("fume_fastscnn")
    ckpt = save_checkpoint(
        Checkpoint("fume_fastscnn", {}, model.state_dict(), preprocessing=Preprocessing((320, 240))),
        tmp_path / "stage1.pt",
    )
    out = tmp_path / "stage1.onnx"
    done = subprocess.run(
        [sys.executable, "-m", "fume_edge", "export", str(ckpt), "-o", str(out), "--check-pairs", "3"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--size" not in done.stderr and "multiples of 32" not in done.stdout + done.stderr
    flat = " ".join(done.stdout.split())
    assert "exported at 640×480, the model was trained at 320×240" in flat
    assert "next: fume-edge calibrate" in flat and "--size 640x480" in flat
    import onnx

    dims = [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 480, 640]
