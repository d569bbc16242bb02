"""Device-side MQTT for fleets against a real Mosquitto: availability, retained state, Home Assistant discovery,
retained and flooded commands, topic-safe ids, and the ACL that reserves a device's client id and topics."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import paho.mqtt.publish as publish
import pytest
from alerts_support import make_event, policy_config, prediction, sinks_config
from fleet_support import Recorder
from mqtt_broker import MOSQUITTO, MOSQUITTO_PASSWD, Broker

from fume_edge.alerts import mqtt as mqtt_sink
from fume_edge.alerts.device_state import StateTracker
from fume_edge.alerts.mqtt import MqttPublisher
from fume_edge.alerts.service import AlertService
from fume_edge.alerts.store import AlertStore
from fume_edge.alerts.subject import set_subject, subject_history
from fume_edge.alerts.worker import SinkWorker
from fume_edge.errors import FumeEdgeError
from waiting import eventually

DEVICE = "barn-1"
ACL = Path(__file__).parents[1] / "fume_edge" / "fleet" / "mosquitto-acl.conf"
FRAME = np.zeros((48, 64), np.float32)


def sinks(tmp_path: Path, port: int, prefix: str = "fe", **mqtt_keys: object):
    return sinks_config(
        tmp_path,
        {"mqtt": {"url": f"mqtt://127.0.0.1:{port}/{prefix}", "reconnect_min_s": 1, "reconnect_max_s": 1, **mqtt_keys}},
    )


def test_state_tracker_reports_once_per_interval_with_the_rate() -> None:
    tracker = StateTracker("default", 10.0, "ab12")
    first = tracker.update(0.0, 1e9, None, {"co2": 0.1, "ch4": None}, {"ch4"}, [], None)
    assert first is not None and first.cameras == {"co2": "live", "ch4": "silent"} and first.ph_class is None
    probs = {"Healthy": 0.2, "Transitional": 0.1, "Acidotic": 0.7}
    assert all(
        tracker.update(i * 0.5, 1e9, probs, {"co2": 0.1, "ch4": 0.2}, set(), [], "cow") is None for i in range(1, 20)
    )
    state = tracker.update(10.0, 1e9 + 10, probs, {"co2": 0.1, "ch4": 0.2}, set(), ["acidosis_risk"], "cow")
    assert state is not None and state.fps == pytest.approx(2.0) and state.ph_class == "Acidotic"
    assert json.loads(state.to_json())["open_alerts"] == ["acidosis_risk"]


def test_late_subscriber_reads_availability_state_and_discovery(broker: Broker, tmp_path: Path) -> None:
    config = sinks(tmp_path, broker.port, state_interval_s=1.0, discovery=True)
    service = AlertService(policy_config({"smoothing_s": 0.0}), config, device_id=DEVICE, model_sha="c0ffee" * 10)
    service.start()
    eventually(
        lambda: service.sinks.mqtt is not None and service.sinks.mqtt.connected,
        "service.sinks.mqtt is not None and service.sinks.mqtt.connected",
        timeout_s=20.0,
    )
    for i in range(30):
        service.on_prediction(i * 0.1, 1e9 + i * 0.1, prediction((0.1, 0.1, 0.8), 0.02, 0.03), FRAME, FRAME)
    late = Recorder(broker.port, ["fe/#", "homeassistant/#"], "late")
    try:
        eventually(
            lambda: "fe/barn-1/default/state" in late.latest(),
            '"fe/barn-1/default/state" in late.latest()',
            timeout_s=20.0,
        )
        state = json.loads(late.latest()["fe/barn-1/default/state"])
        assert state["ph_class"] == "Acidotic" and state["gas_areas"]["ch4"] == pytest.approx(0.03, abs=1e-3)
        assert state["model_sha"] == "c0ffee" * 10 and state["fps"] > 0 and state["cameras"]["co2"] == "live"
        assert late.latest()["fe/barn-1/availability"] == b"online"
        configs = {t: json.loads(p) for t, p in late.latest().items() if t.startswith("homeassistant/")}
        acidotic = configs["homeassistant/sensor/fume_edge_barn-1/default_p_acidotic/config"]
        assert acidotic["state_topic"] == "fe/barn-1/default/state"
        assert acidotic["availability_topic"] == "fe/barn-1/availability"
        assert acidotic["device"]["hw_version"] == "model sha256 c0ffeec0ffee"
        assert "homeassistant/binary_sensor/fume_edge_barn-1/default_acidosis_risk/config" in configs
        assert "homeassistant/binary_sensor/fume_edge_barn-1/default_ch4_camera/config" in configs
        assert len({c["unique_id"] for c in configs.values()}) == len(configs)
    finally:
        late.close()
        service.close()
    after = Recorder(broker.port, ["fe/barn-1/availability"], "after-stop")
    eventually(
        lambda: after.payloads("fe/barn-1/availability") == [b"offline"],
        'after.payloads("fe/barn-1/availability") == [b"offline"]',
        timeout_s=20.0,
    )
    after.close()


def test_a_removed_station_has_its_discovery_configs_emptied(broker: Broker, tmp_path: Path) -> None:
    config = sinks(tmp_path, broker.port, discovery=True).mqtt
    pen = "homeassistant/sensor/fume_edge_barn-1/pen-2_fps/config"
    with AlertStore(tmp_path / "alerts.db") as store:
        both = MqttPublisher(config, store, DEVICE, stations=("default", "pen-2"))
        both.start()
        watcher = Recorder(broker.port, ["homeassistant/#"], "watcher")
        eventually(lambda: pen in watcher.latest(), "pen in watcher.latest()", timeout_s=20.0)
        both.stop()
        one = MqttPublisher(config, store, DEVICE, stations=("default",))
        one.start()
        eventually(
            lambda: watcher.latest().get(pen) == b"", 'watcher.latest().get(pen) == b""', timeout_s=20.0
        )  # emptied: Home Assistant removes the entity
        one.stop()
        watcher.close()
    late = Recorder(broker.port, ["homeassistant/#"], "late")
    eventually(
        lambda: "homeassistant/sensor/fume_edge_barn-1/default_fps/config" in late.latest(),
        '"homeassistant/sensor/fume_edge_barn-1/default_fps/config" in late....',
        timeout_s=20.0,
    )
    assert not any("pen-2" in topic for topic in late.latest())  # the retained config is gone from the broker
    late.close()


@pytest.mark.parametrize("v311", [False, True], ids=["mqtt5", "mqtt311"])
def test_a_retained_command_is_never_obeyed_on_reconnect(broker: Broker, tmp_path: Path, v311: bool) -> None:
    """Issue 19 item 5: a retained `evil-ret` on cmd/subject must not override later tags when the device
    reconnects (a broker restart here)."""
    topic = f"fe/{DEVICE}/cmd/subject"
    publish.single(topic, "evil-ret", qos=1, retain=True, hostname="127.0.0.1", port=broker.port)
    worker = SinkWorker(sinks(tmp_path, broker.port), device_id=DEVICE)
    worker.start()
    publisher = worker.mqtt
    assert publisher is not None and eventually(lambda: publisher.connected, "publisher.connected", timeout_s=20.0)
    if v311:  # replay a 3.1.1 broker's answer to v5, as test_alerts_mqtt does: it reconnects with 3.1.1
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.reasoncodes import ReasonCode

        publisher._on_connect(publisher._client, None, None, ReasonCode(PacketTypes.CONNACK, identifier=132), None)
        eventually(
            lambda: publisher._protocol == mqtt.MQTTv311 and publisher.connected,
            "publisher._protocol == mqtt.MQTTv311 and publisher.connected",
            timeout_s=20.0,
        )
    set_subject(worker.store, "good-cow", "cli")
    publish.single(topic, "live-cow", qos=1, hostname="127.0.0.1", port=broker.port)  # a proof it listens
    eventually(
        lambda: subject_history(worker.store, 1)[0].subject == "live-cow",
        'subject_history(worker.store, 1)[0].subject == "live-cow"',
        timeout_s=20.0,
    )
    set_subject(worker.store, "good-cow", "cli")
    broker.stop()
    eventually(lambda: not publisher.connected, "not publisher.connected", timeout_s=20.0)
    broker.start()
    eventually(lambda: publisher.connected, "publisher.connected", timeout_s=30)
    publish.single(topic, "after-cow", qos=1, hostname="127.0.0.1", port=broker.port)
    eventually(
        lambda: subject_history(worker.store, 1)[0].subject == "after-cow",
        'subject_history(worker.store, 1)[0].subject == "after-cow"',
        timeout_s=20.0,
    )
    history = [change.subject for change in subject_history(worker.store, 50)]
    worker.stop()
    assert "evil-ret" not in history


def test_a_live_retained_command_is_applied_once_and_cleared(broker: Broker, tmp_path: Path) -> None:
    topic = f"fe/{DEVICE}/cmd/subject"
    with SinkWorker(sinks(tmp_path, broker.port), device_id=DEVICE) as worker:
        assert worker.mqtt is not None and eventually(
            lambda: worker.mqtt.connected, "worker.mqtt.connected", timeout_s=20.0
        )
        publish.single(topic, "cow-9", qos=1, retain=True, hostname="127.0.0.1", port=broker.port)
        eventually(
            lambda: [c.subject for c in subject_history(worker.store, 1)] == ["cow-9"],
            '[c.subject for c in subject_history(worker.store, 1)] == ["cow-9"]',
            timeout_s=20.0,
        )
        checker = Recorder(broker.port, [topic, f"fe/{DEVICE}/availability"], "checker")
        # retained messages come in subscription order: availability arrives, the cleared command does not
        eventually(
            lambda: f"fe/{DEVICE}/availability" in checker.latest(),
            'f"fe/{DEVICE}/availability" in checker.latest()',
            timeout_s=20.0,
        )
        assert checker.payloads(topic) == []
        checker.close()
        assert [c.subject for c in subject_history(worker.store, 10)] == ["cow-9"]


def test_subject_commands_per_station_and_for_every_station(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`<prefix>/<device>/<station>/cmd/subject` tags that station only; `cmd/subject` still tags every station; a
    station the device does not run is ignored and counted."""

    def send(topic: str, payload: str) -> None:
        publish.single(f"fe/{DEVICE}/{topic}", payload, qos=1, hostname="127.0.0.1", port=broker.port)

    def changes() -> list[tuple[str | None, str | None]]:
        return [(c.subject, c.station) for c in reversed(subject_history(worker.store, 50))]

    with (
        caplog.at_level("WARNING", logger="fume_edge.alerts.command_gate"),
        SinkWorker(
            sinks(tmp_path, broker.port, command_burst=50), device_id=DEVICE, stations=("pen-1", "pen-2")
        ) as worker,
    ):
        publisher = worker.mqtt
        assert publisher is not None and eventually(lambda: publisher.connected, "publisher.connected", timeout_s=20.0)
        send("pen-2/cmd/subject", "cow-2")
        eventually(lambda: changes() == [("cow-2", "pen-2")], 'changes() == [("cow-2", "pen-2")]', timeout_s=20.0)
        send("pen-9/cmd/subject", "cow-9")  # not a station of this device
        send("pen-1/cmd/subject", "cow-1")
        eventually(
            lambda: changes() == [("cow-2", "pen-2"), ("cow-1", "pen-1")],
            'changes() == [("cow-2", "pen-2"), ("cow-1", "pen-1")]',
            timeout_s=20.0,
        )
        eventually(lambda: publisher.commands.unknown == 1, "publisher.commands.unknown == 1", timeout_s=20.0)
        send("pen-1/cmd/subject", "cow-1")  # pen-1 has it already: skipped
        eventually(lambda: publisher.commands.unchanged == 1, "publisher.commands.unchanged == 1", timeout_s=20.0)
        send("pen-1/cmd/subject", "bad;id")  # refused like on cmd/subject
        send("cmd/subject", "herd-A")
        eventually(lambda: changes()[-1] == ("herd-A", None), 'changes()[-1] == ("herd-A", None)', timeout_s=20.0)
        send("pen-2/cmd/subject", "herd-A")  # pen-2's current subject is the device-wide one now: skipped
        eventually(lambda: publisher.commands.unchanged == 2, "publisher.commands.unchanged == 2", timeout_s=20.0)
        assert changes() == [("cow-2", "pen-2"), ("cow-1", "pen-1"), ("herd-A", None)]


def test_a_command_flood_is_rate_limited_counted_and_logged_once(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"fe/{DEVICE}/cmd/subject"
    flooder = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flooder")
    flooder.connect("127.0.0.1", broker.port)
    flooder.loop_start()
    with (
        caplog.at_level("WARNING", logger="fume_edge.alerts.command_gate"),
        SinkWorker(sinks(tmp_path, broker.port, command_rate_per_s=1.0, command_burst=5), device_id=DEVICE) as worker,
    ):
        publisher = worker.mqtt
        assert publisher is not None and eventually(lambda: publisher.connected, "publisher.connected", timeout_s=20.0)
        infos = [flooder.publish(topic, f"cow-{i}", qos=1) for i in range(300)]
        for info in infos:
            info.wait_for_publish(10)
        eventually(
            lambda: publisher.commands.dropped + len(subject_history(worker.store, 400)) >= 300,
            "publisher.commands.dropped + len(subject_history(worker.store, 400)...",
            timeout_s=20.0,
        )
        stored = len(subject_history(worker.store, 400))
        assert 5 <= stored <= 10 and publisher.commands.dropped == 300 - stored
        last = subject_history(worker.store, 1)[0].subject
        eventually(
            lambda: publisher.commands.admit(), "publisher.commands.admit()", timeout_s=20.0
        )  # a token is back; the same value again is skipped
        publisher._log_subjects([(last or "", None)])
        assert publisher.commands.unchanged == 1 and len(subject_history(worker.store, 400)) == stored
    flooder.loop_stop()
    warnings = [r.getMessage() for r in caplog.records if "dropped by the rate limit" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("MQTT commands: ")


def test_a_topic_unsafe_device_id_is_one_line_at_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fume_edge",
            "run",
            "--co2",
            "synthetic",
            "--ch4",
            "synthetic",
            "--device-id",
            "barn/#",
            "--alerts",
            str(tmp_path / "a.db"),
            "--duration",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "--device-id" in lines[0] and "'barn/#'" in lines[0], lines
    with pytest.raises(FumeEdgeError, match="station id"):
        MqttPublisher(sinks(tmp_path, 1883).mqtt, AlertStore(tmp_path / "b.db"), DEVICE, stations=("pen+1",))


def test_a_disconnect_before_connack_is_logged(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """What `--device-id 'barn/#'` did before ids were checked: the broker drops the connection (an invalid Will
    topic) without a CONNACK. Any such drop must be logged."""
    monkeypatch.setattr(mqtt_sink, "check_topic_id", lambda value, where: value)
    with (
        caplog.at_level(logging.WARNING, logger="fume_edge.alerts.mqtt"),
        SinkWorker(sinks(tmp_path, broker.port), device_id="barn/#"),
    ):
        eventually(
            lambda: "closed the connection before accepting it" in caplog.text,
            '"closed the connection before accepting it" in caplog.text',
            timeout_s=20.0,
        )


def test_the_documented_acl_lets_a_device_work_and_reserves_its_client_id(tmp_path: Path) -> None:
    if MOSQUITTO is None or MOSQUITTO_PASSWD is None:
        pytest.skip("needs mosquitto and mosquitto_passwd (apt-get install mosquitto)")
    passwd = tmp_path / "passwd"
    for user in (DEVICE, "operator", "intruder"):
        subprocess.run(
            [MOSQUITTO_PASSWD, "-b", *(["-c"] if user == DEVICE else []), str(passwd), user, "pw-" + user], check=True
        )
    strict = Broker(
        tmp_path / "broker",
        f"allow_anonymous false\npassword_file {passwd}\nacl_file {ACL}\nuse_username_as_clientid true\n",
    )
    strict.start()
    credentials = tmp_path / "mqtt.credentials"
    credentials.write_text(f"{DEVICE}:pw-{DEVICE}\n")
    try:
        operator = Recorder(strict.port, ["fume-edge/#", "homeassistant/#"], "op", auth=("operator", "pw-operator"))
        config = sinks(
            tmp_path,
            strict.port,
            prefix="fume-edge",
            credentials=str(credentials),
            discovery=True,
            state_interval_s=1.0,
        )
        service = AlertService(policy_config(), config, device_id=DEVICE)
        service.start()
        publisher = service.sinks.mqtt
        assert publisher is not None and eventually(lambda: publisher.connected, "publisher.connected", timeout_s=20.0)
        drops = []
        publisher._client.on_disconnect = lambda *a: drops.append(a)  # the device must not be kicked off
        intruder = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fume-edge-{DEVICE}")
        intruder.username_pw_set("intruder", "pw-intruder")
        accepted = []
        intruder.on_connect = lambda c, u, f, rc, p: accepted.append(rc)
        intruder.connect("127.0.0.1", strict.port)
        intruder.loop_start()
        eventually(lambda: bool(accepted), "bool(accepted)", timeout_s=20.0)
        intruder.publish(f"fume-edge/{DEVICE}/availability", "offline", qos=1, retain=True).wait_for_publish(5)
        event = make_event()
        service.sinks.submit([event])
        service.on_prediction(0.0, 1e9, prediction(), FRAME, FRAME)
        # the operator's own connection: under use_username_as_clientid a second login as it would replace it
        operator.client.publish(f"fume-edge/{DEVICE}/cmd/subject", "cow-acl", qos=1)
        eventually(
            lambda: any(
                event.event_id.encode() in p
                for p in operator.payloads(f"fume-edge/{DEVICE}/default/alerts/acidosis_risk")
            ),
            'any( event.event_id.encode() in p for p in operator.payloads(f"fume...',
            timeout_s=20.0,
        )
        eventually(
            lambda: f"fume-edge/{DEVICE}/default/state" in operator.latest(),
            'f"fume-edge/{DEVICE}/default/state" in operator.latest()',
            timeout_s=20.0,
        )
        eventually(
            lambda: any(t.startswith("homeassistant/") for t in operator.latest()),
            'any(t.startswith("homeassistant/") for t in operator.latest())',
            timeout_s=20.0,
        )
        eventually(
            lambda: subject_history(service.sinks.store, 1)[0].subject == "cow-acl",
            'subject_history(service.sinks.store, 1)[0].subject == "cow-acl"',
            timeout_s=20.0,
        )
        assert operator.payloads(f"fume-edge/{DEVICE}/availability") == [b"online"]  # the intruder was denied
        assert drops == [] and publisher.connected
        intruder.loop_stop()
        service.close()
        operator.close()
    finally:
        strict.stop()


def test_an_event_goes_to_its_stations_topic_and_the_archive_reads_it_only_there(
    broker: Broker, tmp_path: Path
) -> None:
    """`<prefix>/<device>/<station>/alerts/<type>`: the topic names the station the payload names."""
    from fume_edge.fleet.records import EventRecord, parse, subscriptions

    event = make_event(station="pen-2", device_id=DEVICE)
    recorder = Recorder(broker.port, [f"fe/{DEVICE}/+/alerts/#"], "events")
    with SinkWorker(sinks(tmp_path, broker.port), device_id=DEVICE, stations=("pen-1", "pen-2")) as worker:
        assert worker.mqtt is not None and eventually(
            lambda: worker.mqtt.connected, "worker.mqtt.connected", timeout_s=20.0
        )
        worker.submit([event])
        topic = f"fe/{DEVICE}/pen-2/alerts/acidosis_risk"
        eventually(lambda: recorder.payloads(topic) != [], "recorder.payloads(topic) != []", timeout_s=20.0)
    recorder.close()
    payload = recorder.payloads(topic)[0]
    record = parse("fe", topic, payload)
    assert isinstance(record, EventRecord) and record.station == "pen-2" and record.event_id == event.event_id
    assert parse("fe", f"fe/{DEVICE}/pen-1/alerts/acidosis_risk", payload) is None  # another station's topic
    assert parse("fe", f"fe/{DEVICE}/alerts/acidosis_risk", payload) is None
    assert "fe/+/+/alerts/+" in subscriptions("fe")
