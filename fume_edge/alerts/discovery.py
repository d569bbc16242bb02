"""Home Assistant MQTT discovery: the retained config messages that make a device's sensors appear by themselves.

Opt-in (`sinks.mqtt.discovery: true`). Each entity is one retained message at
`<discovery_prefix>/<component>/fume_edge_<device>/<station>_<key>/config` (Home Assistant's
`<component>/[<node_id>/]<object_id>/config`, https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery)
whose `state_topic` is the station's retained state and whose `value_template` picks one field of it; the device's
availability topic marks every entity unavailable when the device is offline. A station that is no longer
configured has its entities removed with an empty retained config (`stale_config`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from fume_edge import __version__
from fume_edge.alerts.event import ALERT_TYPES, MODEL_TYPES
from fume_edge.alerts.topics import DeviceTopics
from fume_edge.labels import GASES

DEFAULT_DISCOVERY_PREFIX = "homeassistant"


@dataclass(frozen=True)
class DiscoveryEntity:
    topic: str
    config: dict[str, object]

    @property
    def payload(self) -> str:
        return json.dumps(self.config, separators=(",", ":"), sort_keys=True)


def node_id(device_id: str) -> str:
    """Home Assistant node ids take letters, digits, `_` and `-` only (device ids may also hold `.`)."""
    return "fume_edge_" + device_id.replace(".", "_")


def discovery_wildcard(discovery_prefix: str, device_id: str) -> str:
    """Every config topic of this device (to find the retained ones of removed stations)."""
    return f"{discovery_prefix}/+/{node_id(device_id)}/+/config"


def _sensors(station: str) -> list[tuple[str, str, dict[str, object]]]:
    """(component, key, fields) of every entity of one station."""
    found: list[tuple[str, str, dict[str, object]]] = []
    found.append(("sensor", "ph_class", {"name": f"{station} pH class", "value_template": "{{ value_json.ph_class }}"}))
    found.append(
        (
            "sensor",
            "p_acidotic",
            {
                "name": f"{station} P(Acidotic)",
                "unit_of_measurement": "%",
                "state_class": "measurement",
                "value_template": "{{ (value_json.probs.Acidotic * 100) | round(1) if value_json.probs else none }}",
            },
        )
    )
    for gas in GASES:
        found.append(
            (
                "sensor",
                f"{gas}_area",
                {
                    "name": f"{station} {gas.upper()} gas area",
                    "unit_of_measurement": "%",
                    "state_class": "measurement",
                    "value_template": f"{{{{ (value_json.gas_areas.{gas} * 100) | round(3) "
                    f"if value_json.gas_areas.{gas} is not none else none }}}}",
                },
            )
        )
    found.append(
        (
            "sensor",
            "fps",
            {
                "name": f"{station} inference FPS",
                "unit_of_measurement": "fps",
                "state_class": "measurement",
                "value_template": "{{ value_json.fps }}",
            },
        )
    )
    for alert_type in (t for t in ALERT_TYPES if t not in MODEL_TYPES):  # model updates are one-off events
        found.append(
            (
                "binary_sensor",
                alert_type,
                {
                    "name": f"{station} {alert_type.replace('_', ' ')}",
                    "device_class": "problem",
                    "value_template": f"{{{{ 'ON' if '{alert_type}' in value_json.open_alerts else 'OFF' }}}}",
                },
            )
        )
    for gas in GASES:
        found.append(
            (
                "binary_sensor",
                f"{gas}_camera",
                {
                    "name": f"{station} {gas.upper()} camera",
                    "device_class": "connectivity",
                    "value_template": f"{{{{ 'ON' if value_json.cameras.{gas} == 'live' else 'OFF' }}}}",
                },
            )
        )
    return found


def discovery_entities(
    topics: DeviceTopics,
    stations: Iterable[str],
    model_sha: str | None,
    discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX,
) -> list[DiscoveryEntity]:
    """The config message of every entity of every station."""
    node = node_id(topics.device_id)
    device = {
        "identifiers": [node],
        "name": f"fume-edge {topics.device_id}",
        "manufacturer": "fume-edge",
        "model": "FUME gas-imaging monitor",
        "sw_version": __version__,
        "hw_version": f"model sha256 {model_sha[:12]}" if model_sha else "model unknown",
    }
    entities = []
    for station in stations:
        for component, key, fields in _sensors(station):
            object_id = f"{station}_{key}"
            config = {
                **fields,
                "unique_id": f"{node}_{object_id}",
                "object_id": f"{node}_{object_id}",
                "device": device,
                "state_topic": topics.state(station),
                "availability_topic": topics.availability,
                "payload_available": "online",
                "payload_not_available": "offline",
            }
            if component == "binary_sensor":
                config.update(payload_on="ON", payload_off="OFF")
            entities.append(DiscoveryEntity(f"{discovery_prefix}/{component}/{node}/{object_id}/config", config))
    return entities


def stale_config(topic: str, payload: bytes, current: frozenset[str]) -> bool:
    """A retained config of this device that names no entity configured now (a removed station): to be emptied."""
    return bool(payload) and topic not in current
