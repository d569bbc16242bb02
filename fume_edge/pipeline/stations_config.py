"""`stations:` in run.yaml: the camera pairs one device watches, each a station with its own alerts and subject.

A station is one CO2 + one CH4 camera; its id names it in every alert event, summary row, JSONL line and MQTT
topic, so it must be topic- and file-safe. `alerts:` of a station overrides keys of the device's `alerts:` policy
for that station only (merged key by key, checked like the policy itself). With no `stations:` the device runs one
station from `sources.co2` / `sources.ch4` (`--co2 A --ch4 B`), named by `station_id` (`--station-id`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from fume_edge.alerts.topics import check_topic_id
from fume_edge.config import ConfigModel
from fume_edge.errors import FumeEdgeError


def _topic_safe(value: str) -> str:
    try:
        return check_topic_id(value, "id")
    except FumeEdgeError as exc:
        raise ValueError(str(exc).removeprefix("id: ")) from None


StationId = Annotated[str, AfterValidator(_topic_safe)]  # one MQTT topic level, a file name part


class StationConfig(ConfigModel):
    """One camera pair: `id`, its CO2 and CH4 sources (as `--co2`/`--ch4` name them), and alert overrides."""

    id: StationId  # 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit
    co2: str = Field(min_length=1)
    ch4: str = Field(min_length=1)
    alerts: dict[str, Any] = Field(default_factory=dict)  # keys of run.yaml `alerts:`, this station only


def check_unique(stations: list[StationConfig]) -> None:
    """Station ids name topics, rows and files: each once."""
    seen: set[str] = set()
    for index, station in enumerate(stations):
        if station.id in seen:
            raise FumeEdgeError(
                f"station id {station.id!r} is used twice (stations[{index}]); give each station its own id"
            )
        seen.add(station.id)
