"""The HTTP server: Starlette routes served by uvicorn from its own thread and event loop.

Routes: `/` (the page) and `/static/*` (its bundled assets: no CDN, a barn often has no internet), the read-only
JSON API `/api/status`, `/api/alerts`, `/api/trend`, camera images `/api/frame/{co2,ch4}.jpg`, alert snapshots
`/snapshots/NAME` (only files directly in the snapshot folder), `/metrics` (Prometheus), `/healthz`, and the one
write, `POST /api/subject`. Access rules are in `access.py`; database reads and JPEG encoding run in Starlette's
worker threads, so a slow client or a slow query holds a worker, never the inference loop.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fume_edge.alerts.event import ALERT_TYPES, parse_iso
from fume_edge.alerts.subject import check_subject, set_subject
from fume_edge.errors import FumeEdgeError
from fume_edge.web.access import AccessPolicy
from fume_edge.web.status import WebSources, alerts_page, health, status, trend

STATIC = Path(str(resources.files("fume_edge.web") / "static"))
Handler = Callable[[Request], Response]
WEB_NICENESS = 10


def _unauthorized(why: str) -> Response:
    return JSONResponse({"error": why}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _bad(why: str) -> Response:
    return JSONResponse({"error": why}, status_code=400)


def _time_param(request: Request, name: str) -> float | None:
    text = request.query_params.get(name)
    return None if not text else parse_iso(text)


def build_app(src: WebSources, access: AccessPolicy, registry: CollectorRegistry) -> Starlette:
    def read(handler: Handler) -> Handler:
        def guarded(request: Request) -> Response:
            if not access.may_read(request.headers, request.cookies):
                return _unauthorized("this device needs its access token to show this")
            return handler(request)
        return guarded

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    def api_status(request: Request) -> Response:
        return JSONResponse(status(src))

    def api_alerts(request: Request) -> Response:
        q = request.query_params
        alert_type = q.get("type") or None
        if alert_type is not None and alert_type not in ALERT_TYPES:
            return _bad(f"type {alert_type!r}: use one of {', '.join(ALERT_TYPES)}")
        try:
            since, until = _time_param(request, "since"), _time_param(request, "until")
            page_no, per_page = int(q.get("page", 0)), int(q.get("per_page", 20))
        except ValueError:
            return _bad("since/until: ISO-8601 times; page/per_page: whole numbers")
        return JSONResponse(alerts_page(src, alert_type=alert_type, since=since, until=until,
                                        subject=q.get("subject") or None, page=max(page_no, 0), per_page=per_page))

    def api_trend(request: Request) -> Response:
        try:
            hours = float(request.query_params.get("hours", 6))
        except ValueError:
            return _bad("hours: a number")
        if not math.isfinite(hours):
            return _bad("hours: a finite number")
        return JSONResponse(trend(src, min(max(hours, 0.02), 24 * 365), request.query_params.get("subject") or None))

    def frame(request: Request) -> Response:
        camera = request.path_params["camera"]
        if camera not in src.feed.cameras:
            return JSONResponse({"error": f"no camera {camera!r}"}, status_code=404)
        data = src.feed.jpeg(camera)
        if data is None:
            return Response(status_code=204)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    def snapshot(request: Request) -> Response:
        name = request.path_params["name"]
        folder = src.snapshot_dir
        # One plain file name inside the folder: no separators, no `..`, no absolute paths, no links out.
        if folder is None or "/" in name or "\\" in name or name in ("", ".", "..") or not name.endswith(".png"):
            return JSONResponse({"error": "not a snapshot"}, status_code=404)
        path = (folder / name).resolve()
        if path.parent != folder or not path.is_file():
            return JSONResponse({"error": "not a snapshot"}, status_code=404)
        return FileResponse(path, media_type="image/png")

    def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def healthz(request: Request) -> Response:
        ok, body = health(src)
        return JSONResponse(body, status_code=200 if ok else 503)

    async def set_subject_route(request: Request) -> Response:
        if not access.may_write(request.headers):
            return _unauthorized("setting the subject needs the access token (Authorization: Bearer TOKEN)")
        try:
            body: Any = json.loads(await request.body() or b"{}")
            subject = check_subject(body.get("subject") if isinstance(body, dict) else None)
        except (ValueError, FumeEdgeError) as exc:
            return _bad(str(exc))
        change = await run_in_threadpool(set_subject, src.store, subject, "web")  # a committed write: off the loop
        src.pipeline.alerts.set_subject(subject)  # now; the run's watcher confirms it from the log
        return JSONResponse({"subject": subject, "time": change.epoch})

    return Starlette(routes=[
        Route("/", page),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        Route("/api/status", read(api_status)),
        Route("/api/alerts", read(api_alerts)),
        Route("/api/trend", read(api_trend)),
        Route("/api/frame/{camera}.jpg", read(frame)),
        Route("/snapshots/{name:path}", read(snapshot)),
        Route("/metrics", read(metrics)),
        Route("/healthz", healthz),
        Route("/api/subject", set_subject_route, methods=["POST"]),
    ])


class WebServer:
    """Binds at construction (a taken port is one clear error before the run starts), serves between `__enter__`
    and `__exit__` from a daemon thread with its own event loop."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
        except OSError as exc:
            self.socket.close()
            raise FumeEdgeError(f"--http {host}:{port}: cannot listen there ({exc.strerror}); pick a free port or "
                                "an address of this machine") from None
        self.host, self.port = host, self.socket.getsockname()[1]
        # No access log: request lines could carry a token, and a barn device's journal has better uses.
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        self._thread = threading.Thread(target=self._serve, name="fume-edge-web", daemon=True)

    def _serve(self) -> None:
        # Lower this thread's CPU priority (Linux: per thread, inherited by the worker threads it starts), so
        # on a busy CPU the scheduler serves inference first and the page waits.
        if hasattr(os, "setpriority"):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WEB_NICENESS)
            except OSError:
                pass
        self.server.run(sockets=[self.socket])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __enter__(self) -> "WebServer":
        self._thread.start()
        deadline = time.monotonic() + 10.0
        while not self.server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise FumeEdgeError(f"--http {self.host}:{self.port}: the web server did not start; see the log above")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=5.0)
        self.socket.close()
