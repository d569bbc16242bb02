"""The Mosquitto configuration of a device's local broker bridged to the fleet's central broker.

`fume-edge run` publishes to a broker on the device itself (loopback, always reachable), and the local broker
carries the device's topics on to the central one over a bridge (https://mosquitto.org/man/mosquitto-conf-5.html,
"Bridges"): QoS 1 both ways, `cleansession false` so both ends keep the session (and what is queued) across an
uplink cut, persistence on so the queue survives a reboot, TLS when the URL is mqtts://. Commands for this device
come in over the same bridge. jetson_setup.sh --mqtt-bridge writes this text (`fume-edge bridge-config` prints it).
"""

from __future__ import annotations

from dataclasses import dataclass

from fume_edge.alerts.discovery import DEFAULT_DISCOVERY_PREFIX, node_id
from fume_edge.alerts.mqtt import parse_mqtt_url
from fume_edge.alerts.topics import DeviceTopics, check_topic_id
from fume_edge.errors import FumeEdgeError

LOCAL_PORT = 1883
SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"  # Debian/Ubuntu's (and JetPack's) CA bundle


@dataclass(frozen=True)
class BridgeSettings:
    central_url: str  # mqtt(s)://host[:port]/prefix of the central broker
    device_id: str
    login: tuple[str, str | None] | None = None  # from the root-only credentials file
    ca: str | None = None  # CA bundle of the central broker's certificate (mqtts; default: the system's)
    queue_max: int = 100_000  # messages the local broker queues for the bridge while the uplink is down


def local_listener(port: int = LOCAL_PORT) -> str:
    """The local broker: loopback only (no login needed there), persistent, a deep queue for the bridge."""
    return f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\nautosave_interval 60\n"


def bridge_config(settings: BridgeSettings, queue: bool = True) -> str:
    """The bridge section (mosquitto.conf syntax). Holds the broker password when there is one: install it 0600."""
    target = parse_mqtt_url(settings.central_url, "--mqtt-bridge")
    device = check_topic_id(settings.device_id, "device id")
    topics = DeviceTopics(target.prefix, device)
    user, password = settings.login or (target.username, target.password)
    if password is not None and user is None:
        raise FumeEdgeError("--mqtt-bridge: a password needs a user name (user:password in the credentials file)")
    lines = [
        "# fume-edge: this device's topics to the fleet's central broker (generated; rerun jetson_setup.sh to change)",
        f"connection fume-edge-{device}",
        f"address {target.host}:{target.port}",
        f"remote_clientid fume-edge-{device}",
        "cleansession false",
        "bridge_protocol_version mqttv311",
        "try_private true",
        # "1" / "0" (retained; "0" also as the bridge's last will on the central broker): whether the uplink is up
        "notifications true",
        f"notification_topic {topics.uplink}",
        "restart_timeout 5 60",
        "keepalive_interval 30",
    ]
    if queue:
        lines.insert(1, f"max_queued_messages {settings.queue_max}")
    if user is not None:
        lines.append(f"remote_username {user}")
    if password is not None:
        lines.append(f"remote_password {password}")
    if target.tls:
        lines += [f"bridge_cafile {settings.ca or SYSTEM_CAS}", "bridge_insecure false"]
    lines += [
        f"topic {topics.availability} out 1",
        f"topic {topics.base}/+/alerts/# out 1",
        f"topic {topics.base}/+/state out 1",
        f"topic {DEFAULT_DISCOVERY_PREFIX}/+/{node_id(device)}/+/config out 1",
        f"topic {topics.base}/cmd/# in 1",
        f"topic {topics.base}/+/cmd/# in 1",
    ]
    return "\n".join(lines) + "\n"


def local_url(central_url: str, port: int = LOCAL_PORT) -> str:
    """The URL `fume-edge run` uses on a bridged device: the local broker, the central broker's topic prefix."""
    return f"mqtt://127.0.0.1:{port}/{parse_mqtt_url(central_url, '--mqtt-bridge').prefix}"


def main(argv: list[str] | None = None) -> int:
    """`python3 -m fume_edge.fleet.bridge --central URL --device-id ID [--credentials FILE] [--ca FILE]`: the local
    broker's config file (jetson_setup.sh --mqtt-bridge installs it); `--local-url`: the URL for run.yaml."""
    import argparse
    import sys

    from fume_edge.alerts.mqtt import read_login

    parser = argparse.ArgumentParser(prog="python3 -m fume_edge.fleet.bridge", description=main.__doc__)
    parser.add_argument("--central", required=True, help="mqtt[s]://[user:pass@]host[:port]/prefix")
    parser.add_argument("--device-id", help="this device's id (required for the config)")
    parser.add_argument("--credentials", help="root-only file with user:password for the central broker")
    parser.add_argument("--ca", help="CA bundle of the central broker's certificate (default: the system's)")
    parser.add_argument("--local-url", action="store_true", help="print the local broker's URL and exit")
    args = parser.parse_args(argv)
    try:
        if args.local_url:
            print(local_url(args.central))
            return 0
        if args.device_id is None:
            parser.error("--device-id is required")
        login = None if args.credentials is None else read_login(args.credentials, "--credentials")
        print(local_listener() + bridge_config(BridgeSettings(args.central, args.device_id, login, args.ca)), end="")
    except FumeEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
