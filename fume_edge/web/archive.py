"""`fume-edge serve alerts.db`: the device page on a stored alert database, without a capture loop.

For the researcher who copied a device's database (and its snapshots folder) to a laptop: history, trend and
snapshots as the device showed them. The database is opened read-only (immutable when its folder is read-only
media), nothing is written beside it, and the live-only panels say there is no live run.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from fume_edge import __version__
from fume_edge.alerts.store import AlertStore
from fume_edge.errors import FumeEdgeError
from fume_edge.pipeline.shutdown import StopSignals
from fume_edge.web.access import AccessPolicy, load_token, parse_listen
from fume_edge.web.attach import access_note
from fume_edge.web.guards import known_names
from fume_edge.web.server import WebServer, build_app
from fume_edge.web.status import WebSources

TOKEN_ENV = "FUME_EDGE_TOKEN"


def archive_info(store: AlertStore, db: Path) -> dict[str, str]:
    """Who the database came from, as its last run recorded it (the file name when it has no run)."""
    runs = store.runs(1)
    device = runs[0]["device_id"] if runs else db.stem
    model_sha = (runs[0].get("model_sha") if runs else None) or ""
    return {
        "device_id": device,
        "model": f"stored database {db.name}",
        "model_sha256": model_sha,
        "backend": "no live run",
        "version": __version__,
    }


def serve_archive(db: Path, listen: str, snapshots: Path | None, hostnames: tuple[str, ...], console: Console) -> None:
    """Serve the page on `db` at `listen` until Ctrl+C."""
    host, port = parse_listen(listen)
    folder = snapshots if snapshots is not None else db.parent / "snapshots"
    if snapshots is not None and not snapshots.is_dir():
        raise FumeEdgeError(
            f"--snapshots {snapshots}: no such folder; pass the snapshots folder copied with the "
            "database, or leave the option out"
        )
    access = AccessPolicy.for_listen(host, load_token(None, TOKEN_ENV), public_read=False, state_dir=None)
    with AlertStore(db, readonly=True) as store:
        sources = WebSources(
            None,
            None,
            store,
            folder.resolve() if folder.is_dir() else None,
            archive_info(store, db),
            stale_after_s=0.0,
            access=access_note(access),
        )
        with WebServer(build_app(sources, access, None, known_names(hostnames)), host, port) as server:
            url = f"{server.url}/" if access.open_reads else access.page_url(server.url)
            with StopSignals() as signals:
                console.print(f"serving {db} read-only: {url}  (Ctrl+C to stop)", highlight=False, soft_wrap=True)
                while not signals.is_set():
                    time.sleep(0.2)
            console.print(f"{signals.received}: stopped", style="yellow", highlight=False)
