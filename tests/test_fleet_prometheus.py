"""The fleet's Prometheus files: promtool checks the config and rules and runs the rules' unit tests, and a real
Prometheus scrapes two `fume-edge run --http` on loopback through file-based service discovery."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from mqtt_broker import free_port
from waiting import eventually
from web_support import LOOPING_OUTAGE, WebRun

FILES = Path(__file__).parents[1] / "fume_edge" / "fleet" / "prometheus"
RULES_TEST = Path(__file__).parent / "prometheus" / "rules_test.yml"
PROMTOOL, PROMETHEUS = shutil.which("promtool"), shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus; .ci/run does)"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


@needs_promtool
def test_the_shipped_config_and_rules_pass_promtool_checks() -> None:
    checked = promtool("check", "config", str(FILES / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = promtool("check", "rules", str(FILES / "fume-edge.rules.yml"), str(FILES / "measured-fps.rules.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    for name in ("devices.json", "nodes.json"):
        assert all(group["targets"] for group in json.loads((FILES / name).read_text()))


@needs_promtool
def test_every_alerting_rule_has_a_passing_promtool_unit_test() -> None:
    alerts = {
        line.split(":", 1)[1].strip()
        for line in (FILES / "fume-edge.rules.yml").read_text().splitlines()
        if line.strip().startswith("- alert:")
    }
    tested = {
        line.split(":", 1)[1].strip()
        for line in RULES_TEST.read_text().splitlines()
        if line.strip().startswith("alertname:")
    }
    assert alerts == tested and len(alerts) == 5
    result = promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (apt-get install prometheus)")
def test_a_real_prometheus_scrapes_two_devices(tmp_path: Path, small_onnx: Path) -> None:
    runs = [
        WebRun(
            tmp_path / name, "--model", str(small_onnx), "--duration", "120", "--device-id", name, yaml=LOOPING_OUTAGE
        )
        for name in ("barn-1", "barn-2")
    ]
    config = tmp_path / "prom"
    config.mkdir()
    shutil.copy(FILES / "fume-edge.rules.yml", config)
    shutil.copy(FILES / "measured-fps.rules.yml", config)
    prometheus_yml = (FILES / "prometheus.yml").read_text().replace("scrape_interval: 15s", "scrape_interval: 1s")
    (config / "prometheus.yml").write_text(prometheus_yml)
    (config / "devices.json").write_text(
        json.dumps([{"targets": [f"127.0.0.1:{run.port}"], "labels": {"device": run.folder.name}} for run in runs])
    )
    (config / "nodes.json").write_text("[]")
    port = free_port()
    with open(tmp_path / "prometheus.log", "w") as log:
        server = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config / 'prometheus.yml'}",  # type: ignore[list-item]
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        for run in runs:
            run.wait_ready()

        def both_scraped() -> bool:
            try:
                answer = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/query", params={"query": "fume_edge_inference_fps"}, timeout=5
                ).json()
                return {r["metric"]["device"] for r in answer["data"]["result"]} == {"barn-1", "barn-2"}
            except (httpx.HTTPError, KeyError):
                return False

        try:
            eventually(both_scraped, "both devices' fume_edge_inference_fps in Prometheus", timeout_s=90, every_s=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{(tmp_path / 'prometheus.log').read_text()[-2000:]}") from None
    finally:
        server.terminate()
        server.wait(30)
        for run in runs:
            run.stop()
