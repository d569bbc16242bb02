"""The HTTP server: Starlette routes served by uvicorn from its own thread and event loop.

Routes: `/` (the page) and `/static/*` (its bundled assets: no CDN, a barn often has no internet), the read-only
JSON API `/api/status`, `/api/alerts`, `/api/trend`, each station's camera images
`/api/frame/{station}/{co2,ch4}.jpg` (`/api/frame/{co2,ch4}.jpg`: the first station's), alert snapshots
`/snapshots/NAME` (only files directly in the snapshot folder), `/metrics` (Prometheus), `/healthz`, and the
writes, `POST /api/subject` (for one station or every station) and `POST /api/model` (install a bundle already on
the device; `GET /api/model` shows the install's progress); `/api/status?station=ID` details one station. Serving a
stored database (no pipeline), the live-only routes (images, metrics, the writes) answer 404. Access rules are in
`access.py`, the Host check and the brake on guessing in
`guards.py`, what each request may carry in `schemas.py`: every refusal is a 4xx with `{"error": ...}`. Database
reads and JPEG encoding run in Starlette's worker threads, so a slow client or a slow query holds a worker, never
the inference loop.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fume_edge.alerts.subject import check_subject, set_subject
from fume_edge.errors import FumeEdgeError
from fume_edge.web.access import AccessPolicy
from fume_edge.web.guards import AuthFailures, HostGuard
from fume_edge.web.schemas import (
    MAX_BODY_BYTES,
    AlertsQuery,
    BadRequest,
    ModelBody,
    StatusQuery,
    SubjectBody,
    TrendQuery,
    parse,
    parse_json_body,
)
from fume_edge.web.status import WebSources, alerts_page, health, status, trend

STATIC = Path(str(resources.files("fume_edge.web") / "static"))
Handler = Callable[[Request], Response]
WEB_NICENESS = 10
SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,200}\.png")
NO_LIVE_RUN = "no live run: this server shows a stored alert database"
NO_MODEL_INSTALLS = (
    "this server installs no models (a live `fume-edge run` without model.path and with the bundle extra does: "
    "pip install 'fume-edge[bundle]')"
)


def _error(status_code: int, why: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"error": why}, status_code=status_code, headers=headers)


async def _body(request: Request) -> bytes:
    """The request body, refused (413) beyond MAX_BODY_BYTES before it is all read."""
    length = request.headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_BODY_BYTES:
        raise HTTPException(413, f"the body may have at most {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise HTTPException(413, f"the body may have at most {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise HTTPException(400, "the client went away mid-body") from None
    return b"".join(chunks)


def build_app(
    src: WebSources, access: AccessPolicy, registry: CollectorRegistry | None, allowed_hosts: list[str]
) -> Starlette:
    failures = AuthFailures()

    def client(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def refused(request: Request, allowed: bool, why: str) -> Response | None:
        """None when the request may go on; else 429 (too many wrong tokens from this client, whatever this one
        carries: a right guess must look like a wrong one) or 401 (a wrong token counts as a guess)."""
        if failures.blocked(client(request)):
            return _error(429, "too many requests with a wrong access token; wait a minute", {"Retry-After": "60"})
        if allowed:
            return None
        if access.presented(request.headers, request.cookies):
            failures.failed(client(request))
        return _error(401, why, {"WWW-Authenticate": "Bearer"})

    def read(handler: Handler) -> Handler:
        def guarded(request: Request) -> Response:
            if access.open_reads:
                return handler(request)
            return refused(
                request,
                access.may_read(request.headers, request.cookies),
                "this device needs its access token to show this",
            ) or handler(request)

        return guarded

    def live(handler: Handler) -> Handler:
        def only_live(request: Request) -> Response:
            return handler(request) if src.live else _error(404, NO_LIVE_RUN)

        return only_live

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    def api_status(request: Request) -> Response:
        q = parse(StatusQuery, dict(request.query_params))
        try:
            return JSONResponse(status(src, q.station))
        except LookupError as exc:
            return _error(404, str(exc))

    def api_alerts(request: Request) -> Response:
        q = parse(AlertsQuery, dict(request.query_params))
        return JSONResponse(
            alerts_page(
                src,
                alert_type=q.type,
                since=q.since,
                until=q.until,
                subject=q.subject or None,
                page=q.page,
                per_page=q.per_page,
                station=q.station,
            )
        )

    def api_trend(request: Request) -> Response:
        q = parse(TrendQuery, dict(request.query_params))
        return JSONResponse(trend(src, q.hours, q.subject or None, q.station))

    def frame(request: Request) -> Response:
        feeds = src.feeds
        assert feeds is not None
        station: str | None = request.path_params.get("station")  # None: the old route, the first station's
        camera = request.path_params["camera"]
        feed = feeds.first if station is None else feeds.get(station)
        if feed is None:
            return _error(404, f"no station {str(station)[:64]!r} in this run; see `stations` in /api/status")
        if camera not in feeds.cameras:
            return _error(404, f"no camera {camera[:40]!r}; the cameras are {', '.join(feeds.cameras)}")
        data = feed.jpeg(camera)
        if data is None:
            return Response(status_code=204)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    def snapshot(request: Request) -> Response:
        name = request.path_params["name"]
        folder = src.snapshot_dir
        # One plain file name inside the folder: no separators, no `..`, no NUL, no absolute paths, no links out.
        if folder is None or not SNAPSHOT_NAME.fullmatch(name):
            return _error(404, "not a snapshot")
        path = (folder / name).resolve()
        if path.parent != folder or not path.is_file():
            return _error(404, "not a snapshot")
        return FileResponse(path, media_type="image/png")

    def metrics(request: Request) -> Response:
        assert registry is not None
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def healthz(request: Request) -> Response:
        ok, body = health(src)
        return JSONResponse(body, status_code=200 if ok else 503)

    async def set_subject_route(request: Request) -> Response:
        if not src.live:
            return _error(404, NO_LIVE_RUN)
        denied = refused(
            request,
            access.may_write(request.headers),
            "setting the subject needs this device's access token (Authorization: Bearer TOKEN); "
            "open the page with the address fume-edge printed at start",
        )
        if denied is not None:
            return denied
        body = parse_json_body(await _body(request), SubjectBody)
        try:
            subject = check_subject(body.subject)
        except FumeEdgeError as exc:
            raise BadRequest(str(exc)) from None
        if body.station is not None and src.station(body.station) is None:
            return _error(404, f"no station {body.station[:64]!r} in this run")
        # A committed write: off the loop
        change = await run_in_threadpool(
            functools.partial(set_subject, station=body.station), src.store, subject, "web"
        )
        assert src.pipeline is not None
        src.pipeline.alerts.set_subject(subject, body.station)  # now; the run's watcher confirms it from the log
        return JSONResponse({"subject": subject, "station": body.station, "time": change.epoch})

    def model_state(request: Request) -> Response:
        if src.installer is None:
            return _error(404, NO_MODEL_INSTALLS)
        return JSONResponse(src.installer.state())

    async def install_model_route(request: Request) -> Response:
        installer = src.installer
        if installer is None:
            return _error(404, NO_MODEL_INSTALLS)
        denied = refused(
            request,
            access.may_write(request.headers),
            "installing a model needs this device's access token (Authorization: Bearer TOKEN)",
        )
        if denied is not None:
            return denied
        body = parse_json_body(await _body(request), ModelBody)
        if installer.busy:
            return _error(409, f"an install of {installer.state()['source']} is running; wait for it to finish")
        try:
            source = installer.request(body.bundle, "web")  # checks the text, starts the worker thread
        except FumeEdgeError as exc:
            raise BadRequest(str(exc)) from None
        return JSONResponse({"installing": source}, status_code=202)

    async def bad_request(request: Request, exc: Exception) -> Response:
        return _error(400, str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, exc.detail, exc.headers)

    return Starlette(
        routes=[
            Route("/", page),
            Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
            Route("/api/status", read(api_status)),
            Route("/api/alerts", read(api_alerts)),
            Route("/api/trend", read(api_trend)),
            Route("/api/frame/{camera}.jpg", read(live(frame))),
            Route("/api/frame/{station}/{camera}.jpg", read(live(frame))),
            Route("/snapshots/{name:path}", read(snapshot)),
            Route("/metrics", read(live(metrics))),
            Route("/healthz", healthz),
            Route("/api/subject", set_subject_route, methods=["POST"]),
            Route("/api/model", read(model_state), methods=["GET"]),
            Route("/api/model", install_model_route, methods=["POST"]),
        ],
        middleware=[Middleware(HostGuard, allowed_hosts=allowed_hosts)],
        exception_handlers={BadRequest: bad_request, HTTPException: http_error},
    )


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
            raise FumeEdgeError(
                f"--http {host}:{port}: cannot listen there ({exc.strerror}); pick a free port or "
                "an address of this machine"
            ) from None
        self.host, self.port = host, self.socket.getsockname()[1]
        # No access log: request lines could carry a token, and a barn device's journal has better uses.
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        self._thread = threading.Thread(target=self._serve, name="fume-edge-web", daemon=True)

    def _serve(self) -> None:
        # Lower this thread's CPU priority (Linux: per thread, inherited by the worker threads it starts), so
        # on a busy CPU the scheduler serves inference first and the page waits.
        if hasattr(os, "setpriority"):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WEB_NICENESS)
        self.server.run(sockets=[self.socket])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __enter__(self) -> WebServer:
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
