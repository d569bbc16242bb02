"""`fume-edge synth` and `fume-edge pair` run as the real entry point: outputs, the split table, one-line errors."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from data_support import dummy_images

from fume_edge.data.records import read_samples


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from fume_edge.cli import main; main()", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(scope="module")
def small_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "data.yaml"
    path.write_text("synthetic:\n  width: 96\n  height: 72\n  animals: 8\n  sessions_per_animal: 2\n")
    return path


def _next_command(stdout: str) -> list[str]:
    """The printed `next:` command split as a shell would split it when pasted."""
    line = next(line for line in stdout.splitlines() if line.startswith("next: "))
    return shlex.split(line.removeprefix("next: "))


def test_synth_then_pair(tmp_path: Path, small_yaml: Path) -> None:
    data = tmp_path / "my data (1)"  # a folder name a shell would split or choke on unquoted
    synth = cli("synth", data / "ds", "--pairs", "60", "--workers", "1", "--config", small_yaml)
    assert synth.returncode == 0, synth.stderr
    assert "60 pairs" in synth.stdout and (data / "ds" / "annotations.csv").is_file()
    assert _next_command(synth.stdout)[:5] == [
        "fume-edge",
        "pair",
        str(data / "ds" / "annotations.csv"),
        "-o",
        str(data),
    ]
    paired = cli("pair", data / "ds" / "annotations.csv", "-o", tmp_path / "pairs")
    assert paired.returncode == 0, paired.stderr
    assert "Transitional" in paired.stdout and "paired_train.csv" in paired.stdout
    samples = [s for split in ("train", "val", "test") for s in read_samples(tmp_path / f"pairs/paired_{split}.csv")]
    assert sum(s.co2 is not None and s.ch4 is not None for s in samples) == 60


def test_synth_videos(tmp_path: Path, small_yaml: Path) -> None:
    result = cli(
        "synth",
        tmp_path / "vid",
        "--videos",
        "--fps",
        "5",
        "--clock-offset",
        "0.1",
        "--drop-rate",
        "0.1",
        "--outage",
        "ch4:2:1",
        "--config",
        small_yaml,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "vid").iterdir()) == ["ch4.avi", "ch4.csv", "co2.avi", "co2.csv"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("pair", "{tmp}/absent.csv", "-o", "{tmp}/out"), "absent.csv: CSV file not found"),
        (("pair", "{tmp}/bad.csv", "-o", "{tmp}/out"), "bad.csv row 2, column 'gas': unknown gas 'xenon'"),
        (("synth", "{tmp}/vid", "--videos", "--outage", "ch4-2"), "--outage 'ch4-2': expected GAS:START:SECONDS"),
        (("synth", "{tmp}/ds", "--pairs", "0"), "--pairs must be at least 1"),
    ],
)
def test_user_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    image, mask = dummy_images(tmp_path)
    header = "image,mask,gas,ph,animal_id,session_id,timestamp"
    (tmp_path / "bad.csv").write_text(f"{header}\n{image},{mask},xenon,6,A,S,0\n")
    result = cli(*(a.format(tmp=tmp_path) for a in args))
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "vid").exists() and not (tmp_path / "ds").exists()
