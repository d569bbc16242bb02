"""Installs asked for from afar, while a run is live: MQTT `<prefix>/<device>/cmd/model` and `POST /api/model`.

A request names a bundle file already on the device (an absolute path) or an https URL the device can reach (a
download into the models folder, capped at the install's `max_mb`, removed after the install). The install itself
is `install_bundle`, so the signature, the hashes, the gate and the atomic switch are the same as on the command
line; a running `fume-edge run` then swaps to the new `models/current` by itself. Requests arrive on the MQTT
network thread or the web server's loop: `request` only checks the text and starts one worker thread; a second
request while one runs is refused (one install at a time, also across processes: the store's install lock).
Every step goes to the log, to the reporters (MQTT `model/progress`) and into `state()` (the page).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fume_edge.bundle.install import InstallOptions, install_bundle
from fume_edge.bundle.store import ModelStore, models_dir
from fume_edge.errors import FumeEdgeError

if TYPE_CHECKING:
    from fume_edge.alerts.service import AlertService

log = logging.getLogger("fume_edge.bundle")

MAX_SOURCE_CHARS = 1024  # a path or URL; anything longer is not one
DOWNLOAD_PREFIX = ".download-"
DOWNLOAD_TIMEOUT_S = 60.0
CHUNK = 1 << 20
Reporter = Callable[[str], None]


def check_source(text: str) -> str:
    """The request's bundle source: an absolute path on the device or an https URL; else one error line."""
    source = text.strip()
    if not source:
        raise FumeEdgeError("model install: empty request; send an absolute bundle path or an https:// URL")
    if len(source) > MAX_SOURCE_CHARS or any(ord(c) < 32 for c in source):
        raise FumeEdgeError(
            f"model install: not a path or URL (over {MAX_SOURCE_CHARS} characters or control characters)"
        )
    if "://" in source:
        parts = urlsplit(source)
        if parts.scheme != "https" or not parts.hostname:
            raise FumeEdgeError(
                f"model install: {source[:80]!r}: only https:// URLs are fetched (the bundle is "
                "signed, but the transfer must not be readable or changeable on the way)"
            )
        return source
    if not Path(source).is_absolute():
        raise FumeEdgeError(f"model install: {source[:80]!r} is not an absolute path on the device")
    return source


def download(
    url: str, folder: Path, max_bytes: int, timeout_s: float = DOWNLOAD_TIMEOUT_S, progress: Reporter = lambda _: None
) -> Path:
    """`url` (https) into a new file in `folder`, refused beyond `max_bytes` (announced or received)."""
    target = folder / f"{DOWNLOAD_PREFIX}{os.getpid()}-{time.monotonic_ns()}.fume"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(target, "wb") as out:  # noqa: S310
            announced = response.headers.get("Content-Length")
            if announced is not None and announced.isdigit() and int(announced) > max_bytes:
                raise FumeEdgeError(
                    f"{url}: {int(announced) / 1e6:.1f} MB is over the bundle size cap ({max_bytes / 1e6:.0f} MB)"
                )
            size, next_report = 0, 0
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise FumeEdgeError(f"{url}: more than the bundle size cap ({max_bytes / 1e6:.0f} MB)")
                out.write(chunk)
                if size >= next_report:
                    progress(f"downloading {url}: {size / 1e6:.1f} MB")
                    next_report = size + 16 * CHUNK
    except FumeEdgeError:
        target.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        target.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise FumeEdgeError(f"{url}: download failed ({reason})") from None
    return target


class RemoteInstaller:
    """One install at a time from MQTT or the page; `state()` is what the page shows."""

    def __init__(self, options: InstallOptions, reporters: tuple[Reporter, ...] = ()) -> None:
        self.options = options
        self.store = ModelStore(models_dir(options.models))
        self.reporters = list(reporters)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state: dict[str, Any] = {"running": False, "source": None, "origin": None, "result": None, "lines": []}
        self._lines: deque[str] = deque(maxlen=50)

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {**self._state, "lines": list(self._lines)}

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._state["running"])

    def request(self, text: str, origin: str) -> str:
        """Start installing the bundle `text` names; returns the source. FumeEdgeError (one line) when the text
        is not a source or an install is already running (nothing started)."""
        try:
            source = check_source(text)
        except FumeEdgeError as exc:
            self._report(f"refused: {exc}", origin)
            raise
        busy: str | None = None
        with self._lock:
            if self._state["running"]:
                busy = f"refused: an install of {self._state['source']} is running; wait for it to finish"
            else:
                self._lines.clear()
                self._state = {"running": True, "source": source, "origin": origin, "result": None}
                self._thread = threading.Thread(target=self._install, args=(source,), name="model-install", daemon=True)
                self._thread.start()
        if busy is not None:
            self._report(busy, origin)
            raise FumeEdgeError(f"model install {busy}")
        return source

    def join(self, timeout_s: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _report(self, line: str, origin: str | None = None) -> None:
        text = f"{line}" if origin is None else f"{line} (from {origin})"
        log.info("model install: %s", text)
        with self._lock:
            self._lines.append(text)
        for reporter in self.reporters:
            try:
                reporter(text)
            except Exception:  # a reporter (MQTT down) must not stop the install
                log.exception("model install: progress report failed")

    def _install(self, source: str) -> None:
        fetched: Path | None = None
        try:
            if source.startswith("https://"):
                self.store.ensure()
                for stale in self.store.root.glob(f"{DOWNLOAD_PREFIX}*"):  # left by a killed install
                    stale.unlink(missing_ok=True)
                fetched = download(source, self.store.root, int(self.options.max_mb * 1e6), progress=self._report)
            result = install_bundle(fetched or Path(source), self.options, progress=self._report)
            outcome = f"installed {result.model.version} ({result.model.backend}) in {result.seconds:.1f} s"
        except FumeEdgeError as exc:
            outcome = f"failed: {exc}"
        except Exception as exc:  # never a dead thread that leaves `running` set
            log.exception("model install crashed")
            outcome = f"failed: {type(exc).__name__}: {exc}"
        finally:
            if fetched is not None:
                fetched.unlink(missing_ok=True)
        with self._lock:
            self._state = {**self._state, "running": False, "result": outcome}
        self._report(outcome)


def serve_model_commands(service: AlertService, options: InstallOptions) -> RemoteInstaller:
    """The run's remote installer: obeys MQTT `cmd/model` and reports on `model/progress` when the alert service
    has MQTT; hand it to the web page too (`WebSources.installer`)."""
    mqtt = service.sinks.mqtt
    installer = RemoteInstaller(options, (mqtt.publish_model_progress,) if mqtt is not None else ())
    if mqtt is not None:
        mqtt.model_command = lambda text: _quiet(installer.request, text)
    return installer


def _quiet(request: Callable[[str, str], str], text: str) -> None:
    with contextlib.suppress(FumeEdgeError):  # reported on model/progress and in the log by `request`
        request(text, "mqtt")
