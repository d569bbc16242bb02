"""The fleet commands: `fume-edge collect` (the central collector) and `fume-edge fleet` (one line per device);
`fume-edge alerts --db postgresql://...` delegates to `show_fleet_alerts`."""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from fume_edge.errors import FumeEdgeError
from fume_edge.extras import install_hint

app = typer.Typer()


def is_fleet_db(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def _redacted(dsn: str) -> str:
    from fume_edge.alerts.secrets import redact_text

    return redact_text(dsn)


def _connect(dsn: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise FumeEdgeError(f"the fleet archive needs psycopg 3: {install_hint('fleet')}") from None
    try:
        return psycopg.connect(dsn, connect_timeout=10)
    except psycopg.Error as exc:
        raise FumeEdgeError(f"--db {_redacted(dsn)}: cannot connect to PostgreSQL ({str(exc).strip()})") from None


def show_fleet_alerts(
    dsn: str,
    *,
    since: str | None,
    alert_type: str | None,
    as_json: bool,
    limit: int | None,
    subject: str | None,
    device: str | None,
    station: str | None,
    wide: bool,
    as_csv: bool = False,
) -> None:
    from fume_edge.alerts.report import check_filters, parse_since, print_events
    from fume_edge.fleet.queries import fleet_events

    check_filters(alert_type, limit, as_json=as_json, as_csv=as_csv)
    start = None if since is None else parse_since(since, time.time())
    with _connect(dsn) as conn:
        events = fleet_events(
            conn, since=start, device=device, station=station, subject=subject, alert_type=alert_type, limit=limit
        )
    print_events(events, _redacted(dsn), as_json=as_json, wide=wide, as_csv=as_csv)


@app.command()
def fleet(
    db: str = typer.Option(
        ..., "--db", help="The fleet archive `fume-edge collect` writes: postgresql://user@host/db."
    ),
) -> None:
    """Every device of the fleet: availability, last seen, model, open alerts, FPS."""
    from fume_edge.console import console
    from fume_edge.fleet.queries import fleet_devices

    with _connect(db) as conn:
        devices = fleet_devices(conn)
    table = Table(
        title=f"{len(devices)} device{'' if len(devices) == 1 else 's'} in {_redacted(db)}", title_justify="left"
    )
    for name in ("device", "availability", "uplink", "last seen (UTC)", "model sha", "open alerts", "FPS", "stations"):
        table.add_column(name)
    for d in devices:
        style = "green" if d.availability == "online" else "red"
        table.add_row(
            d.device_id,
            f"[{style}]{d.availability or '?'}[/]",
            d.uplink or "-",
            d.last_seen.strftime("%Y-%m-%d %H:%M:%S"),
            (d.model_sha or "-")[:12],
            ", ".join(d.open_alerts) or "-",
            "-" if d.fps is None else f"{d.fps:.1f}",
            ", ".join(d.stations) or "-",
        )
    console.print(table)


@app.command()
def collect(
    mqtt: str = typer.Option(
        ..., "--mqtt", help="Central broker and topic prefix: mqtt://\\[user@]host\\[:port]/prefix (mqtts:// for TLS)."
    ),
    db: str = typer.Option(
        ..., "--db", help="PostgreSQL archive: postgresql://user@host/db (password: PGPASSWORD or ~/.pgpass)."
    ),
    client_id: str = typer.Option(
        "fume-edge-collector", "--client-id", help="MQTT client id; the persistent session is kept under it."
    ),
    credentials: Path | None = typer.Option(
        None,
        "--credentials",
        help="File holding the broker's "  # noqa: B008
        "user:password \\[default: the URL's user info].",
    ),
    ca: Path | None = typer.Option(
        None,
        "--ca",
        help="mqtts: CA bundle of the broker's certificate "  # noqa: B008
        "\\[default: system CAs].",
    ),
    batch: int = typer.Option(500, "--batch", min=1, help="Most messages per PostgreSQL transaction."),
) -> None:
    """Archive the fleet's alerts, state and availability from the central broker into PostgreSQL (until stopped)."""
    from fume_edge.alerts.mqtt import read_login
    from fume_edge.console import console
    from fume_edge.fleet.collector import Collector, CollectorConfig

    if not is_fleet_db(db):
        raise FumeEdgeError(f"--db {db!r}: expected a PostgreSQL URL, postgresql://user@host/db")
    login = None if credentials is None else read_login(str(credentials), "--credentials")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    collector = Collector(
        CollectorConfig(
            mqtt_url=mqtt,
            dsn=db,
            client_id=client_id,
            credentials=login,
            ca=None if ca is None else str(ca),
            batch_max=batch,
        )
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    collector.start()
    console.print(
        f"collecting {collector.target.prefix}/# from {collector.target.host}:{collector.target.port} "
        f"into {_redacted(db)}; Ctrl-C stops",
        highlight=False,
    )
    while not stop.wait(60):
        s = collector.stats
        logging.info(
            "collector: %d received, %d committed, %d malformed, %d failed transactions",
            s.received,
            s.committed,
            s.ignored,
            s.db_failures,
        )
    collector.stop()
    console.print(f"stopped: {collector.stats.committed} messages committed", highlight=False)
