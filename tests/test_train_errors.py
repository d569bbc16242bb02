"""Bad training input is one clear line naming the key or file, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from fume_edge.errors import FumeEdgeError
from fume_edge.train.config import load_train_config
from fume_edge.train.trainer import command_config, train

from train_support import fast_config, make_paired_dataset

QUIET = Console(quiet=True)


@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_paired_dataset(tmp_path_factory.mktemp("synthetic"), pairs=36)


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("optim:\n  lr: 0.01\n  momentum: 0.9\n", r"bad.yaml:3: optim.momentum: unknown key; valid keys: lr, "),
        ("epochs: ten\n", r"bad.yaml:1: epochs: expected a whole number \(got 'ten'\)"),
        ("data:\n  image_size: [640]\n", r"bad.yaml:2: data.image_size: too few items: item 2 is missing"),
        ("loss:\n  ph_alpha: [1, high, 1]\n", r"bad.yaml:2: loss.ph_alpha\[1\]: expected a number \(got 'high'\)"),
        ("monitor: loss\n", r"bad.yaml:1: monitor: expected 'balanced_accuracy', 'macro_f1', 'gas_iou' or 'joint'"),
        ("batch_size: 0\n", r"bad.yaml:1: batch_size: must be >= 1 \(got 0\)"),
    ],
)
def test_config_errors_name_the_key_and_type(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(FumeEdgeError, match=expected):
        load_train_config(_yaml(tmp_path, text))


def _train_with(config_path: Path, **flags: object) -> None:
    train(command_config(config_path, None, flags.get("data"), None), console=QUIET, show_progress=False)  # type: ignore[arg-type]


def test_missing_data_folder(paired: Path, tmp_path: Path) -> None:
    with pytest.raises(FumeEdgeError, match="nowhere: data folder not found"):
        _train_with(fast_config(paired, tmp_path / "runs"), data=tmp_path / "nowhere")


def test_missing_split(paired: Path, tmp_path: Path) -> None:
    with pytest.raises(FumeEdgeError, match=r"paired_nope.csv: split not found"):
        _train_with(fast_config(paired, tmp_path / "runs", data={"val_csv": "paired_nope.csv"}))


def _without(paired: Path, drop: str | None) -> Path:
    """The training split without the rows of pH class `drop` (None: without any row, header only)."""
    lines = (paired / "paired_train.csv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    column = header.split(",").index("ph_class")
    kept = [] if drop is None else [r for r in rows if r.split(",")[column] != drop]
    path = paired / f"paired_train_without_{drop or 'rows'}.csv"  # beside the original: image paths stay valid
    path.write_text("\n".join([header, *kept]) + "\n", encoding="utf-8")
    return path


def test_empty_split(paired: Path, tmp_path: Path) -> None:
    empty = _without(paired, None)
    with pytest.raises(FumeEdgeError, match="no samples"):
        _train_with(fast_config(paired, tmp_path / "runs", data={"train_csv": empty.name}))


def test_class_absent_from_training(paired: Path, tmp_path: Path) -> None:
    without = _without(paired, "Transitional")
    with pytest.raises(FumeEdgeError, match="no Transitional samples in the training split"):
        _train_with(fast_config(paired, tmp_path / "runs", data={"train_csv": without.name}))


def test_tracker_asked_for_but_not_installed(paired: Path, tmp_path: Path) -> None:
    try:
        import tensorboard  # noqa: F401

        pytest.skip("tensorboard is installed here")
    except ImportError:
        pass
    with pytest.raises(FumeEdgeError, match="logging.tensorboard: tensorboard is not installed"):
        _train_with(fast_config(paired, tmp_path / "runs", logging={"tensorboard": True}))


def test_cli_prints_one_line(tmp_path: Path) -> None:
    fume_edge = Path(sys.executable).with_name("fume-edge")
    bad = _yaml(tmp_path, "epochs: ten\n")
    done = subprocess.run([str(fume_edge), "train", "--config", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error:") and "bad.yaml:1: epochs: expected a whole number" in done.stderr
    resume = subprocess.run(
        [str(fume_edge), "train", "--resume", str(tmp_path / "missing" / "last.pt")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resume.returncode == 2 and "Traceback" not in resume.stderr
