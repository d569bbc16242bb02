"""The device-local broker bridged to the central one: the generated Mosquitto config, and jetson_setup.sh
--mqtt-bridge writing it (root-only, password never printed) and pointing fume-edge at the local broker. The
config carrying real traffic is tested in test_fleet_collector.py (two bridged Mosquittos)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from fume_edge.errors import FumeEdgeError
from fume_edge.fleet.bridge import BridgeSettings, bridge_config, local_url

REPO = Path(__file__).resolve().parents[1]
RELEASE = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 2025"
URL = "mqtts://edge:s3cr%40t@broker.farm:8883/farm"


def test_the_bridge_carries_the_device_topics_with_qos1_a_persistent_session_and_tls() -> None:
    text = bridge_config(BridgeSettings(URL, "barn-7"))
    lines = set(text.splitlines())
    for line in (
        "address broker.farm:8883",
        "cleansession false",
        "remote_username edge",
        "remote_password s3cr@t",
        "bridge_cafile /etc/ssl/certs/ca-certificates.crt",
        "topic farm/barn-7/availability out 1",
        "topic farm/barn-7/+/alerts/# out 1",
        "topic farm/barn-7/+/state out 1",
        "topic homeassistant/+/fume_edge_barn-7/+/config out 1",
        "topic farm/barn-7/cmd/# in 1",
        "topic farm/barn-7/+/cmd/# in 1",
        "notifications true",
        "notification_topic farm/barn-7/uplink",
    ):
        assert line in lines, line
    plain = bridge_config(BridgeSettings("mqtt://10.0.0.2/farm", "barn-7", login=("edge", None)))
    assert "remote_password" not in plain and "bridge_cafile" not in plain and "remote_username edge" in plain
    assert local_url(URL) == "mqtt://127.0.0.1:1883/farm"
    with pytest.raises(FumeEdgeError, match="not a valid id"):
        bridge_config(BridgeSettings(URL, "barn/#"))


def jetson(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "etc").mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc/nv_tegra_release").write_text(RELEASE + "\n")
    return subprocess.run(
        [
            "bash",
            str(REPO / "jetson_setup.sh"),
            "--root",
            str(tmp_path),
            "--co2-camera",
            "csi://0",
            "--ch4-camera",
            "csi://1",
            "--device-id",
            "barn-7",
            "--mqtt-bridge",
            URL,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_jetson_setup_mqtt_bridge_shows_and_writes_the_bridge(tmp_path: Path) -> None:
    dry = jetson(tmp_path / "dry", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would write: /etc/mosquitto/conf.d/fume-edge-bridge.conf (mode 600)" in dry.stdout
    assert "  | topic farm/barn-7/+/alerts/# out 1" in dry.stdout and "mosquitto" in dry.stdout
    assert "s3cr" not in dry.stdout and "  | remote_password (hidden)" in dry.stdout

    root = tmp_path / "root"
    done = jetson(root)
    assert done.returncode == 0, done.stdout + done.stderr
    conf = root / "etc/mosquitto/conf.d/fume-edge-bridge.conf"
    assert conf.stat().st_mode & 0o777 == 0o600 and "s3cr" not in done.stdout
    assert conf.read_text().strip() == (
        subprocess.run(
            ["python3", "-m", "fume_edge.fleet.bridge", "--central", URL, "--device-id", "barn-7"],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=True,
        ).stdout.strip()
    )
    assert "remote_password s3cr@t" in conf.read_text() and "listener 1883 127.0.0.1" in conf.read_text()
    run_yaml = yaml.safe_load((root / "etc/fume-edge/run.yaml").read_text())
    assert run_yaml["sinks"]["mqtt"]["url"] == "mqtt://127.0.0.1:1883/farm"
    assert (root / "etc/fume-edge/mqtt.credentials").read_text().strip() == "edge:s3cr%40t"
    again = jetson(root)
    assert again.returncode == 0 and "unchanged: /etc/mosquitto/conf.d/fume-edge-bridge.conf" in again.stdout
