"""`fume-edge train --epochs --size --batch --name` override the YAML; a bad value names its flag's key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fume_edge.errors import FumeEdgeError
from fume_edge.train.trainer import command_config, next_commands


def test_flags_override_the_packaged_config() -> None:
    config = command_config(None, None, Path("data"), epochs=2, size=(160, 128), batch=4, name="trial")
    assert (config.epochs, config.data.image_size, config.batch_size, config.run_name) == (2, (160, 128), 4, "trial")
    assert config.data.root == "data"
    untouched = command_config(None, None)
    assert (untouched.epochs, untouched.data.image_size, untouched.batch_size) == (100, (640, 480), 8)


def test_too_small_size_is_one_clear_error() -> None:
    with pytest.raises(FumeEdgeError, match="image_size"):
        command_config(None, None, size=(16, 16))


def test_training_ends_with_eval_and_export_of_its_best_checkpoint() -> None:
    config = command_config(None, None, Path("data"), name="trial")
    evaluate, export = next_commands(config, Path("runs/trial"))
    assert evaluate == "fume-edge eval runs/trial/best.pt --data data/paired_test.csv"
    assert export == "fume-edge export runs/trial/best.pt -o engines/trial.onnx"
