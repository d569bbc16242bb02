"""The collector's systemd unit template, rendered and checked by systemd itself."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).parents[1] / "fume_edge" / "service" / "fume-edge-collect.service.in"


def test_the_collector_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd; .ci/run does)")
    values = {
        "@VENV@": "/opt/fume-edge/venv",
        "@USER@": "fume-collect",
        "@MQTT@": "mqtts://broker.farm:8883/farm",
        "@DB@": "postgresql://fleet@localhost/fleet",
    }
    unit = TEMPLATE.read_text()
    for key, value in values.items():
        unit = unit.replace(key, value)
    assert not re.search(r"@[A-Z]+@", "\n".join(line for line in unit.splitlines() if not line.startswith("#")))
    units = tmp_path / "etc/systemd/system"
    units.mkdir(parents=True)
    (units / "fume-edge-collect.service").write_text(unit)
    system = tmp_path / "usr/lib/systemd/system"
    system.mkdir(parents=True)
    for target in Path("/lib/systemd/system").glob("*.target"):
        shutil.copy(target, system)
    executable = tmp_path / "opt/fume-edge/venv/bin/fume-edge"
    executable.parent.mkdir(parents=True)
    shutil.copy(sys.executable, executable)
    result = subprocess.run(
        [analyze, "verify", f"--root={tmp_path}", "fume-edge-collect.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stdout + result.stderr, result.stdout + result.stderr
