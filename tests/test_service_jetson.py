"""Jetson facts from a fake filesystem: the L4T release, its JetPack row, and the benchmark conditions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fume_edge.service import jetson

JETSON_PY = Path(jetson.__file__)


@pytest.mark.parametrize(
    "line, l4t, jetpack, tensorrt, cuda, python",
    [
        ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref", "35.4.1", "5.1.x", "8.5.2", "11.4", "3.8"),
        ("# R36 (release), REVISION: 2.0, GCID: 35084178, BOARD: generic", "36.2.0", "6.0", "8.6.2", "12.2", "3.10"),
        ("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic", "36.4.0", "6.1", "10.3", "12.6", "3.10"),
        ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic", "36.4.3", "6.2", "10.3", "12.6", "3.10"),
        ("# R36 (release), REVISION: 4.7, GCID: 1, BOARD: generic", "36.4.7", "6.1/6.2", "10.3", "12.6", "3.10"),
        ("# R39 (release), REVISION: 1.0, GCID: 1, BOARD: generic", "39.1.0", "7.2", "10.16", "13.x", "3.12"),
    ],
)
def test_release_line_to_jetpack(
    tmp_path: Path, line: str, l4t: str, jetpack: str, tensorrt: str, cuda: str, python: str
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text(line + "\n")
    assert jetson.read_release(tmp_path) == l4t
    row = jetson.lookup(l4t)
    assert row is not None
    assert (row.jetpack, row.tensorrt, row.cuda, row.python) == (jetpack, tensorrt, cuda, python)
    assert row.support == ("refuse" if l4t.startswith("35") else "ok")


def test_unknown_and_missing_releases(tmp_path: Path) -> None:
    assert jetson.read_release(tmp_path) is None and jetson.bench_conditions(tmp_path) is None
    assert jetson.lookup("38.2.0") is None and jetson.lookup("3.6") is None
    assert jetson.parse_release("Ubuntu 22.04") is None


@pytest.mark.parametrize(
    "text, mode",
    [
        ("NV Power Mode: MAXN\n0\n", "MAXN (mode 0)"),
        ("NVPM WARN: fan mode is not set!\nNV Power Mode: 15W\n2\n", "15W (mode 2)"),
        ("NV Power Mode: MAXN_SUPER\n", "MAXN_SUPER"),
        ("nvpmodel: command failed\n", None),
    ],
)
def test_power_mode_from_nvpmodel(text: str, mode: str | None) -> None:
    assert jetson.parse_power_mode(text) == mode


def _frequencies(root: Path, cpu_min: str, gpu_min: str) -> None:
    for cpu in ("cpu0", "cpu1"):
        folder = root / f"sys/devices/system/cpu/{cpu}/cpufreq"
        folder.mkdir(parents=True)
        (folder / "scaling_min_freq").write_text(cpu_min + "\n")
        (folder / "scaling_max_freq").write_text("1728000\n")
    gpu = root / "sys/class/devfreq/17000000.gpu"
    gpu.mkdir(parents=True)
    (gpu / "min_freq").write_text(gpu_min + "\n")
    (gpu / "max_freq").write_text("1020000000\n")
    (root / "sys/class/devfreq/15340000.vic").mkdir()  # not the GPU: not read


def test_clocks_locked_is_what_jetson_clocks_sets(tmp_path: Path) -> None:
    assert jetson.clocks_locked(tmp_path) is None  # nothing readable
    _frequencies(tmp_path / "locked", "1728000", "1020000000")
    _frequencies(tmp_path / "scaling", "115200", "306000000")
    assert jetson.clocks_locked(tmp_path / "locked") is True
    assert jetson.clocks_locked(tmp_path / "scaling") is False


def test_bench_conditions_summary_and_advice(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.3, GCID: 1\n")
    _frequencies(tmp_path, "115200", "306000000")
    conditions = jetson.bench_conditions(tmp_path)
    assert conditions is not None and conditions.clocks_locked is False
    assert conditions.summary().startswith("JetPack 6.2 (L4T 36.4.3), power mode ")
    assert conditions.summary().endswith("clocks not locked")
    assert conditions.advice() is not None and "nvpmodel -m 0 && sudo jetson_clocks" in conditions.advice()
    locked = jetson.BenchConditions("36.4.3", "6.2", "MAXN (mode 0)", True)
    assert locked.advice() is None


def test_runs_as_a_file_with_only_the_standard_library(tmp_path: Path) -> None:
    """jetson_setup.sh runs it with the system python3 before any venv exists."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 3.0, GCID: 1\n")
    out = subprocess.run(
        [sys.executable, "-I", str(JETSON_PY), "facts", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "JETPACK=6.0\nTENSORRT=8.6.2\nCUDA=12.2\nPYTHON=3.10\n" in out and "NUMPY='numpy<2'" in out
