"""Installs asked for from afar while a run is live (issue 20): MQTT `cmd/model` against a real Mosquitto, with the
fleet's command hardening (retained commands ignored, https only), progress on `model/progress`, and the update
steps reaching the alert sinks as `model_installed` / `model_switched` alerts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import paho.mqtt.publish as publish
import pytest
from alerts_support import policy_config, sinks_config
from bundle_support import DEFAULT_ONNX, keypair, make, variant_onnx
from fleet_support import Recorder
from mqtt_broker import Broker
from train_support import make_paired_dataset

from fume_edge.alerts.service import AlertService
from fume_edge.bundle.gate import GateSettings
from fume_edge.bundle.install import InstallOptions, install_bundle, status
from fume_edge.bundle.live import HealthSettings, ModelUpdates
from fume_edge.bundle.make import MakeOptions, make_bundle
from fume_edge.bundle.remote import RemoteInstaller, check_source, serve_model_commands
from fume_edge.bundle.store import ModelStore
from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.base import load_backend
from fume_edge.runtime.holder import SwappableBackend
from waiting import eventually

DEVICE = "barn-1"
GATE = GateSettings(min_fps=0.1, device="cpu")  # speed is benchmarked, not asserted


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """v1 installed into a template models folder; v2 and v3 bundles (other shas) ready to install."""
    root = tmp_path_factory.mktemp("remote")
    (root / "data").mkdir()
    val = make_paired_dataset(root / "data", pairs=12) / "paired_val.csv"
    key, trusted = keypair(root)
    models = root / "models-template"
    install_bundle(
        make(root, DEFAULT_ONNX, val, key, "v1"), InstallOptions(models=models, trusted_keys=trusted, gate=GATE)
    )
    found = {"trusted": trusted, "models": models}
    for tag in ("v2", "v3"):
        found[tag] = make(root, variant_onnx(root / f"{tag}.onnx", tag), val, key, tag)
    thresholds = root / "thresholds.yaml"
    thresholds.write_text("acidosis_risk:\n  start_at: 0.35\n", encoding="utf-8")
    found["thresholds"] = thresholds
    found["v4"] = root / "v4.fume"
    make_bundle(
        MakeOptions(
            model=variant_onnx(root / "v4.onnx", "4"),
            val=val,
            key=key,
            output=found["v4"],
            card=DEFAULT_ONNX.with_name("MODEL_CARD.md"),
            thresholds=thresholds,
            version="v4",
            val_count=2,
        )
    )
    return found


@pytest.fixture()
def options(bundles: dict[str, Path], tmp_path: Path) -> InstallOptions:
    models = Path(shutil.copytree(bundles["models"], tmp_path / "models", symlinks=True))
    return InstallOptions(models=models, trusted_keys=bundles["trusted"], gate=GATE)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "relative/bundle.fume",
        "http://example.org/b.fume",
        "ftp://example.org/b.fume",
        "https:///nohost",
        "/tmp/a\x00b",
        "/x" * 600,
    ],
)
def test_a_source_that_is_not_an_absolute_path_or_https_url_is_refused(text: str) -> None:
    with pytest.raises(FumeEdgeError, match="model install"):
        check_source(text)


def test_a_second_request_while_one_installs_is_refused_and_the_first_completes(
    bundles: dict[str, Path], options: InstallOptions
) -> None:
    lines: list[str] = []
    installer = RemoteInstaller(options, (lines.append,))
    installer.request(str(bundles["v2"]), "test")
    with pytest.raises(FumeEdgeError, match="is running"):
        installer.request(str(bundles["v3"]), "test")
    installer.join(120)
    state = installer.state()
    assert not state["running"] and state["result"].startswith("installed v2")
    assert ModelStore(options.models).current() == "v2"  # type: ignore[arg-type]
    assert any("refused: an install of" in line for line in lines) and lines[-1] == state["result"]


def test_a_missing_bundle_path_fails_with_one_line_and_nothing_changes(options: InstallOptions, tmp_path: Path) -> None:
    installer = RemoteInstaller(options)
    installer.request(str(tmp_path / "absent.fume"), "test")
    installer.join(60)
    assert installer.state()["result"].startswith("failed: ") and "not found" in installer.state()["result"]
    assert ModelStore(options.models).current() == "v1"  # type: ignore[arg-type]


def test_mqtt_cmd_model_installs_reports_progress_and_the_run_switches_with_alert_events(
    broker: Broker, bundles: dict[str, Path], options: InstallOptions, tmp_path: Path
) -> None:
    base = f"fe/{DEVICE}"
    # a retained command from before the run (a stale or planted one) must never be obeyed
    publish.single(f"{base}/cmd/model", str(bundles["v3"]), qos=1, retain=True, hostname="127.0.0.1", port=broker.port)
    sinks = sinks_config(
        tmp_path, {"mqtt": {"url": f"mqtt://127.0.0.1:{broker.port}/fe", "reconnect_min_s": 1, "reconnect_max_s": 1}}
    )
    store = ModelStore(options.models)  # type: ignore[arg-type]
    holder = SwappableBackend(
        load_backend(store.current_model(), device="cpu", threads=1),  # type: ignore[arg-type]
        store.installed("v1").model_sha256,
        "v1",
    )  # type: ignore[union-attr]
    recorder = Recorder(broker.port, [f"{base}/model/progress", f"{base}/+/alerts/#"], "checker")
    with (
        AlertService(policy_config(), sinks, device_id=DEVICE, model_sha=holder.model_sha) as service,
        ModelUpdates(
            holder,
            store,
            HealthSettings(window_s=60.0, min_fps=0.1, poll_s=0.05),
            on_event=service.model_event,
            device="cpu",
            threads=1,
        ),
    ):
        serve_model_commands(service, options)
        mqtt = service.sinks.mqtt
        assert mqtt is not None and eventually(lambda: mqtt.connected, "mqtt.connected", timeout_s=20.0)
        progress = f"{base}/model/progress"
        publish.single(f"{base}/cmd/model", "http://127.0.0.1:1/v2.fume", qos=1, hostname="127.0.0.1", port=broker.port)
        eventually(
            lambda: any(b"only https://" in p for p in recorder.payloads(progress)),
            'any(b"only https://" in p for p in recorder.payloads(progress))',
            timeout_s=20.0,
        )
        publish.single(f"{base}/cmd/model", str(bundles["v2"]), qos=1, hostname="127.0.0.1", port=broker.port)
        eventually(
            lambda: any(p.startswith(b"installed v2") for p in recorder.payloads(progress)),
            'any(p.startswith(b"installed v2") for p in recorder.payloads(progre...',
            timeout_s=120,
        )
        eventually(
            lambda: holder.version == "v2", 'holder.version == "v2"', timeout_s=20.0
        )  # the live run swapped to it
        alerts = f"{base}/default/alerts/"  # a device-level event: the default station
        eventually(
            lambda: {f"{alerts}model_installed", f"{alerts}model_switched"} <= set(recorder.latest()),
            '{f"{alerts}model_installed", f"{alerts}model_switched"} <= set(reco...',
            timeout_s=20.0,
        )
    holder.close()
    recorder.close()
    lines = [p.decode() for p in recorder.payloads(progress)]
    assert any(line.startswith("verifying ") for line in lines) and any("gating v2" in line for line in lines)
    assert "v3" not in {event.get("version") for event in store.events()}  # the retained command was ignored
    installed = json.loads(recorder.latest()[f"{alerts}model_installed"])
    assert installed["detail"]["version"] == "v2" and installed["detail"]["previous"] == "v1"
    assert installed["model_sha"] == store.installed("v2").model_sha256  # type: ignore[union-attr]


TOKEN = "a-long-enough-test-token-0123456789"


@pytest.fixture()
def page(options: InstallOptions, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real uvicorn server with the page's routes on loopback and a model installer (as a live run serves it)."""
    from fume_edge.alerts.store import AlertStore
    from fume_edge.web.access import AccessPolicy
    from fume_edge.web.server import WebServer, build_app
    from fume_edge.web.status import WebSources

    installer = RemoteInstaller(options)
    with AlertStore(tmp_path / "alerts.db") as store:
        sources = WebSources(None, None, store, None, {}, 30.0, installer=installer)
        app = build_app(sources, AccessPolicy(TOKEN, open_reads=True), None, [])
        with WebServer(app, "127.0.0.1", 0) as server:
            yield server.url, installer


def test_page_installs_a_bundle_with_the_token_and_shows_its_progress(
    bundles: dict[str, Path], options: InstallOptions, page
) -> None:  # type: ignore[no-untyped-def]
    import httpx

    url, installer = page
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{url}/api/model").json()["running"] is False
    response = httpx.post(f"{url}/api/model", json={"bundle": str(bundles["v2"])}, headers=auth)
    assert response.status_code == 202 and response.json() == {"installing": str(bundles["v2"])}
    again = httpx.post(f"{url}/api/model", json={"bundle": str(bundles["v3"])}, headers=auth)
    assert again.status_code == 409 and "is running" in again.json()["error"]
    eventually(
        lambda: httpx.get(f"{url}/api/model").json()["result"] is not None,
        'httpx.get(f"{url}/api/model").json()["result"] is not None',
        timeout_s=120,
    )
    state = httpx.get(f"{url}/api/model").json()
    assert state["result"].startswith("installed v2") and any("gating v2" in line for line in state["lines"])
    assert ModelStore(options.models).current() == "v2"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (b'{"bundle": "/x.fume"}', {}, 401, "access token"),
        (b'{"bundle": "/x.fume"}', {"Authorization": "Bearer wrong-token"}, 401, "access token"),
        (b"", None, 400, "empty"),
        (b"not json", None, 400, "not JSON"),
        (b'["/x.fume"]', None, 400, "not a JSON object"),
        (b'{"bundle": 7}', None, 400, "bundle"),
        (b'{"bundle": "/x.fume", "extra": 1}', None, 400, "extra"),
        (b'{"bundle": "x.fume"}', None, 400, "not an absolute path"),
        (b'{"bundle": "http://example.org/x.fume"}', None, 400, "only https://"),
        (b'{"bundle": "/a\\u0000b"}', None, 400, "control characters"),
        (b'{"bundle": "' + b"/x" * 600 + b'"}', None, 400, "bundle"),
        (b'{"bundle": "' + b"x" * 5000 + b'"}', None, 413, "at most"),
    ],
)
def test_hostile_model_requests_are_4xx_and_install_nothing(
    page,
    options: InstallOptions,
    body: bytes,  # type: ignore[no-untyped-def]
    headers: dict[str, str] | None,
    status: int,
    says: str,
) -> None:
    import httpx

    url, installer = page
    sent = {"Authorization": f"Bearer {TOKEN}"} if headers is None else headers
    response = httpx.post(f"{url}/api/model", content=body, headers={**sent, "Content-Type": "application/json"})
    assert response.status_code == status and says in response.json()["error"], response.text
    assert installer.state()["source"] is None and ModelStore(options.models).current() == "v1"  # type: ignore


def test_a_server_without_an_installer_answers_404(tmp_path: Path) -> None:
    import httpx

    from fume_edge.alerts.store import AlertStore
    from fume_edge.web.access import AccessPolicy
    from fume_edge.web.server import WebServer, build_app
    from fume_edge.web.status import WebSources

    with AlertStore(tmp_path / "alerts.db") as store:
        app = build_app(WebSources(None, None, store, None, {}, 30.0), AccessPolicy(TOKEN, True), None, [])
        with WebServer(app, "127.0.0.1", 0) as server:
            response = httpx.post(
                f"{server.url}/api/model", json={"bundle": "/x.fume"}, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert response.status_code == 404 and "installs no models" in response.json()["error"]
            assert httpx.get(f"{server.url}/api/model").status_code == 404


def test_a_bundles_alert_thresholds_are_kept_and_shown_but_never_change_the_running_policy(
    bundles: dict[str, Path], options: InstallOptions, tmp_path: Path
) -> None:
    """The thresholds are informational (docs/bundles.md): the operator's run.yaml decides what raises an alert."""
    store = ModelStore(options.models)  # type: ignore[arg-type]
    holder = SwappableBackend(
        load_backend(store.current_model(), device="cpu", threads=1),  # type: ignore[arg-type]
        "sha-v1",
        "v1",
    )
    policy = policy_config()
    lines: list[str] = []
    with (
        AlertService(policy, sinks_config(tmp_path), device_id=DEVICE, model_sha=holder.model_sha) as service,
        ModelUpdates(holder, store, HealthSettings(poll_s=0.05), on_event=service.model_event, device="cpu"),
    ):
        before = {name: p.config for name, p in service.policies.items()}
        install_bundle(bundles["v4"], options, progress=lines.append)
        eventually(lambda: holder.version == "v4", 'holder.version == "v4"', timeout_s=20.0)
        assert {name: p.config for name, p in service.policies.items()} == before
    holder.close()
    assert policy.acidosis_risk.start_at != 0.35
    shown = status(options.models)["thresholds"]
    assert shown is not None and Path(str(shown)).read_text() == bundles["thresholds"].read_text()
    assert any("they are not applied" in line for line in lines)
    assert status(options.models)["current"]["version"] == "v4"  # type: ignore[index]


@pytest.fixture()
def https_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A local HTTPS file server over `tmp_path/www` with a self-signed certificate this process trusts."""
    import datetime
    import http.server
    import ipaddress
    import ssl
    import threading

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # what urllib's default context trusts
    www = tmp_path / "www"
    www.mkdir()
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(www))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_https_url_is_downloaded_installed_and_the_download_removed(
    bundles: dict[str, Path], options: InstallOptions, https_folder
) -> None:  # type: ignore[no-untyped-def]
    www, base = https_folder
    shutil.copyfile(bundles["v2"], www / "v2.fume")
    installer = RemoteInstaller(options)
    installer.request(f"{base}/v2.fume", "test")
    installer.join(120)
    assert installer.state()["result"].startswith("installed v2"), installer.state()
    assert any(line.startswith(f"downloading {base}/v2.fume") for line in installer.state()["lines"])
    assert ModelStore(options.models).current() == "v2"  # type: ignore[arg-type]
    assert not list(Path(options.models).glob(".download-*"))  # type: ignore[arg-type]


def test_a_download_over_the_size_cap_or_missing_fails_with_one_line_and_nothing_changes(
    bundles: dict[str, Path], options: InstallOptions, https_folder
) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    www, base = https_folder
    shutil.copyfile(bundles["v2"], www / "v2.fume")
    for url, says, cap_mb in (
        (f"{base}/v2.fume", "over the bundle size cap", 0.01),
        (f"{base}/absent.fume", "download failed", 512.0),
    ):
        installer = RemoteInstaller(replace(options, max_mb=cap_mb))
        installer.request(url, "test")
        installer.join(60)
        result = installer.state()["result"]
        assert result.startswith("failed: ") and says in result and "\n" not in result, result
        assert ModelStore(options.models).current() == "v1"  # type: ignore[arg-type]
        assert not list(Path(options.models).glob(".download-*"))  # type: ignore[arg-type]


def test_model_update_types_are_alert_types_but_no_home_assistant_problem_sensors() -> None:
    from fume_edge.alerts.discovery import discovery_entities
    from fume_edge.alerts.event import ALERT_TYPES, MODEL_TYPES
    from fume_edge.alerts.topics import DeviceTopics

    assert set(MODEL_TYPES) <= set(ALERT_TYPES)  # stored, published and collected like every alert
    topics = [entity.topic for entity in discovery_entities(DeviceTopics("fe", DEVICE), ["default"], None)]
    assert any("sink_degraded" in topic for topic in topics)
    assert not any("model_" in topic for topic in topics)  # one-off events are never "on"
