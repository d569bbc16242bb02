"""What `fume-edge run` shows: a live panel, one line per alert event, and a summary at exit.

The panel (rich Live, redrawn by rich's own thread a few times a second) reads the loop's counters and turns
count differences into per-stage rates, so the loop only increments integers. With `--quiet`, or when stdout is
not a terminal (a service's journal), there is no panel: only the event lines and the summary.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from collections.abc import Iterable, Sequence

import numpy as np
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fume_edge.alerts.event import DEFAULT_STATION, END, START, AlertEvent
from fume_edge.labels import GASES, PH_CLASS_NAMES
from fume_edge.pipeline.loop import Pipeline
from fume_edge.pipeline.published import StationSnapshot
from fume_edge.runtime.base import Prediction

STATE_STYLE = {
    "live": "green",
    "silent": "bold red",
    "reconnecting": "yellow",
    "ended": "dim",
    "stopped": "dim",
    "starting": "dim",
}
EVENT_STYLE = {START: "bold red", END: "green"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _probs(probs: Sequence[float] | np.ndarray | None) -> str:
    if probs is None:
        return "-"
    return "  ".join(f"{name} {p:.2f}" for name, p in zip(PH_CLASS_NAMES, probs, strict=True))


def camera_label(key: str) -> str:
    """A camera's name as shown: `CO2` on a one-station device, `pen-1/CO2` on several (a station id keeps its
    case: it is what run.yaml, the page and `fume-edge alerts --station` call it)."""
    station, _, gas = key.rpartition("/")
    return f"{station}/{gas.upper()}" if station else gas.upper()


def _gas_areas(latest: Prediction | None) -> str:
    if latest is None:
        return "-"
    return "  ".join(
        f"{gas.upper()} {'-' if a is None else f'{100 * a:.1f}%'}"
        for gas, a in ((gas, latest.gas_area.get(gas)) for gas in GASES)
    )


def _class_of(probs: Sequence[float] | np.ndarray | None) -> str:
    """The most likely pH class and its probability, e.g. `Acidotic 0.81`."""
    if probs is None:
        return "-"
    best = int(np.argmax(probs))
    return f"{PH_CLASS_NAMES[best]} {float(probs[best]):.2f}"


class StatusView:
    """Context manager around a run: shows the panel while the loop runs (unless quiet)."""

    def __init__(self, console: Console, *, quiet: bool, refresh_hz: float) -> None:
        self.console = console
        self.pipeline: Pipeline | None = None  # and its title: set by `watching`, before the panel starts
        self.title = ""
        self._last: tuple[float, dict[str, Any]] | None = None
        self._rates: dict[str, float] = {}
        self._open: tuple[tuple[str, str, tuple[str, ...], str], ...] = ()
        self.live_panel = not quiet and console.is_terminal
        self.refresh_hz = refresh_hz
        self._live: Live | None = None

    def watching(self, pipeline: Pipeline, title: str) -> StatusView:
        """Show `pipeline`'s published snapshots under `title` while the `with` block runs."""
        self.pipeline, self.title = pipeline, title
        if self.live_panel:
            self._live = Live(
                console=self.console, refresh_per_second=self.refresh_hz, get_renderable=self._render, transient=False
            )
        return self

    def __enter__(self) -> StatusView:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def events(self, events: Sequence[AlertEvent]) -> None:
        """One line per alert event (printed above the panel)."""
        for event in events:
            stamp = datetime.fromisoformat(event.time).astimezone().strftime("%H:%M:%S")
            station = "" if event.station == DEFAULT_STATION else f" station={event.station}"
            cameras = f" cameras={','.join(event.camera_ids)}" if event.type.startswith("camera") else ""
            reason = f" ({event.reason})" if event.reason else ""
            probs = "" if event.probs is None else " " + " ".join(f"{k}={v:.2f}" for k, v in event.probs.items())
            if event.degraded and not event.type.startswith("camera"):
                probs += f" (degraded: {','.join(event.cameras_in_use) or 'no camera'} only)"
            if event.detail:
                probs += " " + " ".join(f"{k}={v}" for k, v in event.detail.items())
            self.console.print(
                Text.assemble(
                    (f"{stamp} ", "dim"),
                    (f"{event.state.upper():5} {event.type}{reason}", EVENT_STYLE.get(event.state, "")),
                    f"{station}{cameras}{probs} id={event.id}",
                ),
                soft_wrap=True,
            )

    def _update_rates(self, stats: dict[str, Any]) -> None:
        now = time.monotonic()
        counts = {f"{cam}_fps": cam_stats["frames"] for cam, cam_stats in stats["cameras"].items()}
        counts.update(pair_fps=stats["pairs"] + stats["singles"], infer_fps=stats["inferences"])
        counts.update({f"{sid}/infer_fps": s["inferences"] for sid, s in stats["stations"].items()})
        if self._last is not None and now - self._last[0] >= 0.5:
            span = now - self._last[0]
            self._rates = {key: (value - self._last[1][key]) / span for key, value in counts.items()}
        if self._last is None or now - self._last[0] >= 0.5:
            self._last = (now, counts)

    def _render(self) -> Panel:
        assert self.pipeline is not None  # `watching` sets it before the panel exists
        snapshot = self.pipeline.snapshot  # published by the loop: never its live objects
        stats = snapshot.stats
        self._update_rates(stats)
        cams = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("camera", "state", "fps", "frames", "garbage", "overwritten", "unmatched", "reconnects"):
            cams.add_column(column, justify="left" if column in ("camera", "state") else "right")
        for cam, s in stats["cameras"].items():
            cams.add_row(
                camera_label(cam),
                Text(s["state"], STATE_STYLE.get(s["state"], "")),
                f"{self._rates.get(cam + '_fps', 0.0):.1f}",
                str(s["frames"]),
                str(s["garbage"]),
                str(s["overwritten"]),
                str(s["unmatched"]),
                str(s["reconnects"]),
            )
        sinks = stats["sinks"]
        first = snapshot.first
        latest = None if first is None else first.latest
        named = len(snapshot.stations) > 1  # several stations: each alert says whose
        self._open = tuple(
            (f"{station.id}: {a.type}" if named else a.type, a.id, a.camera_ids, a.start_time)
            for station in snapshot.stations.values()
            for a in station.open_alerts
        )
        smoothed = None if first is None else first.smoothed
        lines: list[RenderableType] = [
            Text.assemble(
                ("pipeline  ", "bold"),
                f"pairs {self._rates.get('pair_fps', 0.0):.1f}/s   inference "
                f"{self._rates.get('infer_fps', 0.0):.1f} FPS   {stats['inferences']} done   "
                f"degraded {stats['degraded']}   stale {stats['stale']}   non-finite {stats['nonfinite']}",
            ),
            Text.assemble(
                ("stage ms  ", "bold"),
                f"prepare {_ms(stats['prepare_ms'])}   infer "
                f"{_ms(stats['infer_ms'])}   alerts {_ms(stats['alerts_ms'])}   capture-to-result "
                f"{_ms(stats['latency_ms'])}",
            ),
        ]
        if named:
            lines.append(self._stations_table(snapshot.stations.values()))
        else:
            lines += [
                Text.assemble(
                    ("pH        ", "bold"),
                    f"frame {_probs(None if latest is None else latest.ph_probs)}   "
                    f"smoothed {_probs(None if smoothed is None else list(smoothed.values()))}",
                ),
                Text.assemble(("gas area  ", "bold"), _gas_areas(latest)),
            ]
        lines += [
            Text.assemble(
                ("alerts    ", "bold"),
                *(
                    [
                        (f"{kind} ({', '.join(cams_)}) since {since[11:19]}  ", "bold red")
                        for kind, _, cams_, since in self._open
                    ]
                    or [("none active  ", "green")]
                ),
                f"| written {sinks['written']}  queued {sinks['queued']}  dropped {sinks['dropped']}  "
                f"errors {sinks['errors']}",
                ("" if sinks["failing"] is None else f"  {sinks['failing']} FAILING, retrying", "bold red"),
                ""
                if sinks["mqtt_connected"] is None
                else f"  mqtt {'up' if sinks['mqtt_connected'] else 'DOWN'} sent {sinks['mqtt_sent']} unsent "
                f"{sinks['mqtt_unsent']}",
            ),
        ]
        return Panel(
            Group(cams, Text(""), *lines),
            title=self.title,
            subtitle=f"{stats['mode']} mode · {stats['elapsed_s']:.0f} s · Ctrl-C stops",
            title_align="left",
        )

    def _stations_table(self, stations: Iterable[StationSnapshot]) -> Table:
        """Several stations: a row each (its own pH, gas, rate, degraded count and open alerts)."""
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("station", "pH (frame)", "pH (smoothed)", "gas area", "FPS", "degraded", "open alerts"):
            table.add_column(column, justify="right" if column in ("FPS", "degraded") else "left")
        for station in stations:
            latest, smoothed = station.latest, station.smoothed
            table.add_row(
                station.id + ("" if station.subject is None else f" ({station.subject})"),
                _class_of(None if latest is None else latest.ph_probs),
                _class_of(None if smoothed is None else list(smoothed.values())),
                _gas_areas(latest),
                f"{self._rates.get(f'{station.id}/infer_fps', 0.0):.1f}",
                str(station.stats["degraded"]),
                Text(", ".join(a.type for a in station.open_alerts), "bold red")
                if station.open_alerts
                else Text("none", "green"),
            )
        return table

    def summary(self, stats: dict[str, Any], reason: str) -> None:
        """The run's totals, printed once at exit."""
        table = Table(title=f"fume-edge run: {reason}", title_justify="left", box=None, header_style="bold")
        for column in ("camera", "frames", "garbage", "overwritten", "unmatched", "out of order", "reconnects"):
            table.add_column(column, justify="left" if column == "camera" else "right")
        for cam, s in stats["cameras"].items():
            table.add_row(
                camera_label(cam),
                *(str(s[k]) for k in ("frames", "garbage", "overwritten", "unmatched", "out_of_order", "reconnects")),
            )
        elapsed = max(stats["elapsed_s"], 1e-9)
        sinks = stats["sinks"]
        self.console.print(table)
        self.console.print(
            f"{stats['inferences']} inferences in {elapsed:.1f} s ({stats['inferences'] / elapsed:.1f} FPS), "
            f"{stats['pairs']} pairs, {stats['singles']} single-camera (degraded), {stats['stale']} stale pairs "
            f"skipped, {stats['nonfinite']} non-finite predictions dropped; mean ms: prepare "
            f"{_ms(stats['prepare_ms'])}, infer {_ms(stats['infer_ms'])}, alerts "
            f"{_ms(stats['alerts_ms'])}, capture-to-result {_ms(stats['latency_ms'])}",
            soft_wrap=True,
        )
        self.console.print(
            f"alert events written {sinks['written']}, dropped {sinks['dropped']}, not stored {sinks['unstored']}, "
            f"sink errors {sinks['errors']}"
            + (
                ""
                if sinks["mqtt_connected"] is None
                else f", MQTT sent {sinks['mqtt_sent']} (unsent, kept for the next run: {sinks['mqtt_unsent']})"
            ),
            soft_wrap=True,
        )
        if "views" in stats:
            self.console.print(
                f"--display/--record: {stats['views']['shown']} views drawn, "
                f"{stats['views']['dropped']} dropped (drawing never holds up inference)"
            )
        lost = sinks["dropped"] + sinks["unstored"]
        if lost:
            self.console.print(
                f"{lost} alert events were not stored (see the log for why); exit code 1", style="bold red"
            )
