"""The fleet archive's PostgreSQL schema, created and migrated by the collector itself.

`MIGRATIONS[i]` takes the schema from version i to i+1; `migrate` applies the missing ones in one transaction under
an advisory lock (two collectors starting together do not race) and records the version in `fleet_schema`. Events
are indexed by time (a B-tree for ranges and a device/time index for per-device queries): at fleet rates (alerts are
minutes apart; fifty devices for a year is a few million rows) an index serves every query the CLI makes without
the upkeep of partitions. State, availability and uplink keep one row per device/station: the present, not a
history. v2 added `devices.uplink` (the bridge notifications of a device's local broker).
"""

from __future__ import annotations

from typing import Any

SCHEMA_LOCK = 0x66756D65  # pg_advisory_xact_lock key: "fume"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        event_id   text PRIMARY KEY,          -- never changes across retries: a redelivery is absorbed here
        alert_id   text NOT NULL,
        device_id  text NOT NULL,
        station    text NOT NULL,
        type       text NOT NULL,
        state      text NOT NULL,
        subject    text,
        time       timestamptz NOT NULL,      -- the event's own time (device clock)
        received   timestamptz NOT NULL DEFAULT now(),
        payload    jsonb NOT NULL
    );
    CREATE INDEX events_time ON events (time);
    CREATE INDEX events_device_time ON events (device_id, time);
    CREATE INDEX events_subject_time ON events (subject, time) WHERE subject IS NOT NULL;
    CREATE TABLE devices (
        device_id        text PRIMARY KEY,
        availability     text,                -- online / offline, as the device (or its last will) said
        availability_at  timestamptz,
        last_seen        timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE station_state (
        device_id  text NOT NULL,
        station    text NOT NULL,
        time       timestamptz,               -- the state's own time
        received   timestamptz NOT NULL DEFAULT now(),
        state      jsonb NOT NULL,
        PRIMARY KEY (device_id, station)
    );
    """,
    """
    ALTER TABLE devices ADD COLUMN uplink text;            -- up / down: the bridge of the device's local broker
    ALTER TABLE devices ADD COLUMN uplink_at timestamptz;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: Any) -> int:
    """Bring the database at `conn` (psycopg 3, not in a transaction) to `SCHEMA_VERSION`; returns the version it
    found. A database newer than this fume-edge is refused rather than written with an old layout."""
    from fume_edge.errors import FumeEdgeError

    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS fleet_schema (version integer NOT NULL)")
        row = conn.execute("SELECT version FROM fleet_schema").fetchone()
        found = 0 if row is None else int(row[0])
        if found > SCHEMA_VERSION:
            raise FumeEdgeError(
                f"fleet database schema v{found} is newer than this fume-edge (v{SCHEMA_VERSION}); "
                "upgrade fume-edge on the collector host"
            )
        for step in MIGRATIONS[found:]:
            conn.execute(step)
        if row is None:
            conn.execute("INSERT INTO fleet_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
        else:
            conn.execute("UPDATE fleet_schema SET version = %s", (SCHEMA_VERSION,))
    return found
