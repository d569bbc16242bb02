"""What `fume-edge run` tells the user around the loop: a model that will run slowly here, a batch that does not
fit the stations, and where alerts went."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from fume_edge.alerts.mqtt import parse_mqtt_url
from fume_edge.alerts.worker import SinksConfig


def backend_warnings(backend: Any, model: Path) -> list[str]:
    """A TensorRT-target INT8 model (symmetric int8 QDQ) on ONNX Runtime's CPU provider runs slower than the FP32
    graph it came from: say so, with the model that suits a CPU."""
    metadata = getattr(backend, "metadata", None) or {}
    providers = getattr(backend, "providers", None) or []
    if metadata.get("fume_edge.quant.target") == "tensorrt" and providers[:1] == ["CPUExecutionProvider"]:
        return [
            f"{model}: an INT8 model quantized for TensorRT runs on ONNX Runtime's CPU provider here, slower "
            "than FP32; on a CPU use `fume-edge quantize FP32.onnx --calib DIR --target cpu` or the FP32 export"
        ]
    return []


def batch_notes(capacity: int | None, dynamic: bool, stations: int, model: Path) -> list[str]:
    """Several stations share one model call per tick only when the model's batch holds them: say when it does not,
    and which export does (`capacity`: the model's batch, None for any)."""
    if capacity is None or stations == capacity or (dynamic and stations < capacity):
        return []
    export = f"`fume-edge export CHECKPOINT.pt --batch {stations} --dynamic-batch` (docs/models.md)"
    if stations > capacity:
        return [
            f"{model}: {stations} stations on a model of batch {capacity}: a call takes {capacity} of their pairs, "
            f"so the stations take turns; for one call per tick export {export}"
        ]
    return [
        f"{model}: the model's static batch {capacity} is more than the {stations} stations: every call runs "
        f"{capacity - stations} padded rows; export {export}"
    ]


def alert_destinations(sinks: SinksConfig) -> list[str]:
    """Where this run's alert events were written, each with how to read them back (no MQTT credentials)."""
    listing = shlex.join(["fume-edge", "alerts", "--db", sinks.sqlite.path])  # pastes into a shell as is
    places = [f"SQLite {sinks.sqlite.path} (list them: {listing})"]
    if sinks.jsonl.path:
        places.append(f"JSONL {sinks.jsonl.path}")
    if sinks.mqtt.url:
        target = parse_mqtt_url(sinks.mqtt.url)
        places.append(f"MQTT {'mqtts' if target.tls else 'mqtt'}://{target.host}:{target.port}/{target.prefix}")
    if sinks.snapshots.dir:
        places.append(f"snapshots {sinks.snapshots.dir}")
    return places
