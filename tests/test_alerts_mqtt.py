"""MQTT publishing against a real Mosquitto broker: outages, restarts, availability, TLS with credentials."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from alerts_support import make_event, sinks_config
from mqtt_broker import MOSQUITTO, MOSQUITTO_PASSWD, Broker, Subscriber

from fume_edge.alerts.mqtt import MqttTarget, parse_mqtt_url
from fume_edge.alerts.store import AlertStore
from fume_edge.alerts.worker import SinksConfig, SinkWorker
from fume_edge.errors import FumeEdgeError
from waiting import eventually

T0 = 1_780_000_000.0
DEVICE = "barn-1"
ALERTS, STATUS = f"fe/{DEVICE}/+/alerts/#", f"fe/{DEVICE}/availability"


def mqtt_sinks(tmp_path: Path, url: str, **mqtt: Any) -> SinksConfig:
    return sinks_config(tmp_path, {"mqtt": {"url": url, "reconnect_min_s": 1, "reconnect_max_s": 1, **mqtt}})


@pytest.mark.parametrize(
    "url, target",
    [
        ("mqtt://broker.lan/farm/site", MqttTarget("broker.lan", 1883, False, None, None, "farm/site")),
        ("mqtts://u:p%40ss@10.0.0.2:9000/", MqttTarget("10.0.0.2", 9000, True, "u", "p@ss", "fume-edge")),
        ("mqtt://h", MqttTarget("h", 1883, False, None, None, "fume-edge")),
    ],
)
def test_mqtt_urls(url: str, target: MqttTarget) -> None:
    assert parse_mqtt_url(url) == target


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://h/p", "is not an MQTT URL"),
        ("mqtt://h:99999/p", "invalid port"),
        ("mqtt:///p", "names no broker host"),
        ("mqtt://h/p/+/x", "may not contain"),
        ("mqtt://h/p#", "query or fragment"),
        ("mqtt://h/p?qos=2", "query or fragment"),
    ],
)
def test_bad_mqtt_urls_are_one_clear_error(url: str, message: str) -> None:
    with pytest.raises(FumeEdgeError, match=f"^--mqtt: .*{message}"):
        parse_mqtt_url(url)


@pytest.mark.parametrize(
    "mqtt, message",
    [
        ({"url": "mqtt://h/p", "ca": "ca.pem"}, "need an mqtts:// url"),
        ({"url": "mqtts://h/p", "cert": "c.pem"}, "cert and key go together"),
        ({"url": "mqtt://h/p", "reconnect_min_s": 10, "reconnect_max_s": 5}, "reconnect_min_s"),
        ({"url": "ftp://h/p"}, r"run\.sinks\.mqtt\.url: .*not an MQTT URL"),
    ],
)
def test_mqtt_config_is_validated(tmp_path: Path, mqtt: dict, message: str) -> None:
    with pytest.raises(FumeEdgeError, match=message):
        sinks_config(tmp_path, {"mqtt": mqtt})


def test_every_alert_reaches_the_subscriber_across_a_broker_restart(broker: Broker, tmp_path: Path) -> None:
    subscriber = Subscriber(broker.port, [ALERTS])
    worker = SinkWorker(mqtt_sinks(tmp_path, f"mqtt://127.0.0.1:{broker.port}/fe"), device_id=DEVICE)
    worker.start()
    assert worker.mqtt is not None and eventually(
        lambda: worker.mqtt.connected, "worker.mqtt.connected", timeout_s=20.0
    )
    sent = []
    for i in range(40):
        if i == 12:  # mid-stream: the broker goes away
            broker.stop()
            eventually(lambda: not worker.mqtt.connected, "not worker.mqtt.connected", timeout_s=20.0)
        if i == 28:  # everything since is committed and waiting in the outbox
            eventually(lambda: worker.store.unsent_count() >= 16, "worker.store.unsent_count() >= 16", timeout_s=20.0)
            broker.start()
        event = make_event(wall=T0 + i)
        sent.append(event.event_id)
        worker.submit([event])
        time.sleep(0.01)
    assert subscriber.wait_for(lambda s: set(sent) <= set(s.event_ids), timeout=30), (
        f"missing {len(set(sent) - set(subscriber.event_ids))} of {len(sent)}"
    )
    eventually(lambda: worker.store.unsent_count() == 0, "worker.store.unsent_count() == 0", timeout_s=20.0)
    worker.stop()
    subscriber.close()
    with AlertStore(tmp_path / "alerts.db", readonly=True) as store:
        assert store.unsent_count() == 0 and len(store.events()) == 40


def test_the_outbox_of_a_run_without_broker_is_sent_by_the_next_run(tmp_path: Path) -> None:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run does)")
    later = Broker(tmp_path / "broker")  # not started yet: nothing listens on its port
    config = mqtt_sinks(tmp_path, f"mqtt://127.0.0.1:{later.port}/fe", drain_timeout_s=120.0)
    events = [make_event("end", wall=T0 + i) for i in range(5)]  # closed alerts: the next run adds no ends
    worker = SinkWorker(config, device_id=DEVICE)
    worker.start()
    worker.submit(events)
    began = time.monotonic()
    worker.stop()
    # no drain wait while disconnected: far below the 120 s drain timeout (the bound is the behaviour, not speed)
    assert worker.stats().mqtt_unsent == 5 and time.monotonic() - began < 60

    later.start()
    try:
        subscriber = Subscriber(later.port, [ALERTS])
        with SinkWorker(config, device_id=DEVICE) as worker:
            assert subscriber.wait_for(lambda s: {e.event_id for e in events} <= set(s.event_ids))
        assert worker.stats().mqtt_sent == 5 and worker.stats().mqtt_unsent == 0
        subscriber.close()
    finally:
        later.stop()


def test_availability_online_then_retained_offline_on_clean_stop(broker: Broker, tmp_path: Path) -> None:
    worker = SinkWorker(mqtt_sinks(tmp_path, f"mqtt://127.0.0.1:{broker.port}/fe"), device_id=DEVICE)
    worker.start()
    watcher = Subscriber(broker.port, [STATUS], client_id="watcher")
    assert watcher.wait_for(lambda s: ("online", True) in s.statuses or ("online", False) in s.statuses)
    worker.stop()
    assert watcher.wait_for(lambda s: s.statuses[-1][0] == "offline")
    late = Subscriber(broker.port, [STATUS], client_id="late")
    assert late.wait_for(lambda s: s.statuses == [("offline", True)])
    watcher.close()
    late.close()


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[3])
    from alerts_support import sinks_config
    from pathlib import Path
    from fume_edge.alerts.worker import SinkWorker
    config = sinks_config(Path(sys.argv[2]), {"mqtt": {"url": sys.argv[1]}})
    worker = SinkWorker(config, device_id="barn-1")
    worker.start()
    while not worker.mqtt.connected:
        time.sleep(0.02)
    print("connected", flush=True)
    time.sleep(60)
""")


def test_last_will_says_offline_when_the_process_dies(broker: Broker, tmp_path: Path) -> None:
    watcher = Subscriber(broker.port, [STATUS], client_id="watcher")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, f"mqtt://127.0.0.1:{broker.port}/fe", str(tmp_path), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "connected"
        assert watcher.wait_for(lambda s: [p for p, _ in s.statuses] == ["online"])
        child.send_signal(signal.SIGKILL)
        assert watcher.wait_for(lambda s: [p for p, _ in s.statuses] == ["online", "offline"], timeout=10)
    finally:
        child.kill()
        child.wait()
        watcher.close()


def make_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (EC keys: fast to make)."""

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    ssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=fume-edge test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    ssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    )
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


def test_mqtts_with_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if MOSQUITTO is None or MOSQUITTO_PASSWD is None or shutil.which("openssl") is None:
        pytest.skip("needs mosquitto, mosquitto_passwd and openssl (apt-get install mosquitto openssl)")
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = make_tls(certs)
    subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", str(certs / "passwd"), "edge", "s3cr@t"], check=True)
    secure = Broker(
        tmp_path / "broker",
        f"allow_anonymous false\npassword_file {certs / 'passwd'}\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n",
    )
    secure.start()
    try:
        subscriber = Subscriber(secure.port, [ALERTS], tls_ca=str(ca), auth=("edge", "s3cr@t"))
        event = make_event()
        url = f"mqtts://edge:s3cr%40t@127.0.0.1:{secure.port}/fe"
        with SinkWorker(mqtt_sinks(tmp_path, url, ca=str(ca)), device_id=DEVICE) as worker:
            worker.submit([event])
            assert subscriber.wait_for(lambda s: event.event_id in s.event_ids)
        monkeypatch.setenv("FUME_EDGE_MQTT_PASSWORD", "s3cr@t")  # the same password, kept out of the URL
        from_env = make_event()
        url_without = f"mqtts://edge@127.0.0.1:{secure.port}/fe"
        with SinkWorker(mqtt_sinks(tmp_path / "env", url_without, ca=str(ca)), device_id=DEVICE) as worker:
            worker.submit([from_env])
            assert subscriber.wait_for(lambda s: from_env.event_id in s.event_ids)
        monkeypatch.delenv("FUME_EDGE_MQTT_PASSWORD")
        subscriber.close()

        refused = mqtt_sinks(tmp_path / "refused", f"mqtts://edge:wrong@127.0.0.1:{secure.port}/fe", ca=str(ca))
        with (
            caplog.at_level("WARNING", logger="fume_edge.alerts.mqtt"),
            SinkWorker(refused, device_id=DEVICE) as worker,
        ):
            worker.submit([make_event()])
            eventually(
                lambda: "refused the connection" in caplog.text, "the broker refusing the password", timeout_s=20
            )
            assert worker.mqtt is not None and not worker.mqtt.connected
        assert worker.stats().mqtt_unsent == 1  # kept for a run with the right password
    finally:
        secure.stop()


def test_unreadable_tls_files_are_one_clear_error(tmp_path: Path) -> None:
    config = mqtt_sinks(tmp_path, "mqtts://127.0.0.1:8883/fe", ca=str(tmp_path / "missing-ca.pem"))
    with pytest.raises(FumeEdgeError, match="cannot load ca/cert/key"):
        SinkWorker(config, device_id=DEVICE)


def test_a_publish_the_broker_refuses_stays_unsent_and_the_rest_are_marked_sent(tmp_path: Path) -> None:
    """MQTT v5: the broker's ACL denies one topic; its PUBACK says so, and only that row stays in the outbox (under
    3.1.1 the broker acknowledges the dropped publish and it would be marked sent)."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run does)")
    acl = tmp_path / "acl"
    acl.write_text(
        f"topic readwrite fe/{DEVICE}/availability\ntopic readwrite fe/{DEVICE}/default/alerts/camera_degraded\n"
    )
    strict = Broker(tmp_path / "broker", f"allow_anonymous true\nacl_file {acl}\n")
    strict.start()
    try:
        denied, allowed = make_event(alert_type="acidosis_risk"), make_event(alert_type="camera_degraded")
        with SinkWorker(mqtt_sinks(tmp_path, f"mqtt://127.0.0.1:{strict.port}/fe"), device_id=DEVICE) as worker:
            assert worker.mqtt is not None and eventually(
                lambda: worker.mqtt.connected, "worker.mqtt.connected", timeout_s=20.0
            )
            worker.submit([denied, allowed])
            eventually(
                lambda: worker.mqtt.refused >= 1 and worker.mqtt.sent == 1,
                "worker.mqtt.refused >= 1 and worker.mqtt.sent == 1",
                timeout_s=20.0,
            )
        with AlertStore(tmp_path / "alerts.db", readonly=True) as store:
            assert [event.event_id for _, event in store.unsent(10)] == [denied.event_id]
    finally:
        strict.stop()


def test_an_unreachable_broker_is_logged_once_down_and_once_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run does)")
    later = Broker(tmp_path / "broker")  # nothing listens yet
    config = mqtt_sinks(tmp_path, f"mqtt://127.0.0.1:{later.port}/fe")
    with caplog.at_level("WARNING", logger="fume_edge.alerts.mqtt"), SinkWorker(config, device_id=DEVICE) as worker:
        eventually(
            lambda: worker.stats().mqtt_connect_failures >= 3,
            "worker.stats().mqtt_connect_failures >= 3",  # several reconnect attempts (1 s apart) while it is down
            timeout_s=20.0,
        )
        assert caplog.text.count("unreachable") == 1
        later.start()
        try:
            assert worker.mqtt is not None and eventually(
                lambda: worker.mqtt.connected, "worker.mqtt.connected", timeout_s=15
            )
        finally:
            later.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "fume_edge.alerts.mqtt"]
    assert sum("unreachable" in m for m in messages) == 2  # down once; down again when the test stops it
    assert sum("reachable again" in m for m in messages) == 1


def test_a_broker_that_refuses_v5_is_spoken_to_in_3_1_1(broker: Broker, tmp_path: Path) -> None:
    """A 3.1.1-only broker answers a v5 CONNECT with "unsupported protocol version" (CONNACK 132, its return code
    1). That answer is replayed into the publisher on a real connection: it reconnects with 3.1.1 and delivers."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    subscriber = Subscriber(broker.port, [ALERTS])
    worker = SinkWorker(mqtt_sinks(tmp_path, f"mqtt://127.0.0.1:{broker.port}/fe"), device_id=DEVICE)
    worker.start()
    publisher = worker.mqtt
    assert publisher is not None and eventually(lambda: publisher.connected, "publisher.connected", timeout_s=20.0)
    refused = ReasonCode(PacketTypes.CONNACK, identifier=132)
    publisher._on_connect(publisher._client, None, None, refused, None)
    eventually(
        lambda: publisher._protocol == mqtt.MQTTv311 and publisher.connected,
        "publisher._protocol == mqtt.MQTTv311 and publisher.connected",
        timeout_s=20.0,
    )
    event = make_event()
    worker.submit([event])
    assert subscriber.wait_for(lambda s: event.event_id in s.event_ids)
    eventually(lambda: worker.store.unsent_count() == 0, "worker.store.unsent_count() == 0", timeout_s=20.0)
    worker.stop()
    subscriber.close()
