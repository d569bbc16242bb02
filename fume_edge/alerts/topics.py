"""MQTT topic names of one device, and the one pattern every id that becomes a topic level must match.

A device id or station id is a single topic level: `/` would split it, `+` and `#` are wildcards (a Will topic
with one makes the broker drop the connection), and Home Assistant's node ids take only letters, digits, `_` and
`-`. One pattern, checked when a run starts, keeps all of them valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fume_edge.errors import FumeEdgeError

TOPIC_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_topic_id(value: str, where: str) -> str:
    """`value` if it is a safe single topic level (1-64 letters, digits, `.`, `_`, `-`, starting with a letter or
    digit); otherwise one error naming the option."""
    if not TOPIC_ID.match(value):
        raise FumeEdgeError(
            f"{where}: {value[:80]!r} is not a valid id; use 1-64 letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit): it becomes an MQTT topic level"
        )
    return value


@dataclass(frozen=True)
class DeviceTopics:
    """`<prefix>/<device>/...`: availability, per-station state, alert events and commands."""

    prefix: str
    device_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.device_id}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def uplink(self) -> str:
        """Where the device's local broker says whether its bridge to the central broker is up ("1"/"0")."""
        return f"{self.base}/uplink"

    @property
    def subject_command(self) -> str:
        """The subject of every station of the device."""
        return f"{self.base}/cmd/subject"

    @property
    def model_command(self) -> str:
        """A bundle to install: an absolute path on the device or an https URL (fume_edge/bundle/remote.py)."""
        return f"{self.base}/cmd/model"

    @property
    def model_progress(self) -> str:
        """The steps of an install asked for over MQTT or from the page (not retained)."""
        return f"{self.base}/model/progress"

    @property
    def station_subject_commands(self) -> str:
        """The filter of every station's own subject command (`station_subject_command`)."""
        return f"{self.base}/+/cmd/subject"

    def station_subject_command(self, station: str) -> str:
        return f"{self.base}/{station}/cmd/subject"

    def subject_station(self, topic: str, stations: tuple[str, ...]) -> str | None:
        """The station a subject command on `topic` is for: "" for every station (`cmd/subject`), a station id for
        its own; None for anything else (another topic, or a station this device does not run)."""
        if topic == self.subject_command:
            return ""
        station = topic[len(self.base) + 1 : -len("/cmd/subject")] if topic.startswith(self.base + "/") else ""
        return station if station in stations and topic == self.station_subject_command(station) else None

    def state(self, station: str) -> str:
        return f"{self.base}/{station}/state"

    def alert(self, station: str, alert_type: str) -> str:
        """Where the alert events of `station` go: `<prefix>/<device>/<station>/alerts/<type>`."""
        return f"{self.base}/{station}/alerts/{alert_type}"
