"""Two guards in front of every route: the Host check (DNS rebinding) and the brake on token guessing.

DNS rebinding: a web page from `evil.example` re-points its name at 127.0.0.1 and then reads this server as
"itself", with the browser's access of this machine. Its requests carry `Host: evil.example`, so only names this
server is known by are served: localhost, this machine's host names and `http.hostnames`, via Starlette's
TrustedHostMiddleware. A Host that is an IP address literal cannot be rebound and is always served (a phone
opening http://192.168.1.20:8080 must work).

Guessing: each client (IP address) has a bucket of `burst` wrong tokens refilled at `per_minute`; an empty bucket
answers 429 without looking at the token. Refusals are logged at most once a minute, as counts.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

LOG = logging.getLogger("fume_edge.web")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def known_names(extra: Iterable[str]) -> list[str]:
    """localhost, this machine's name (and its mDNS `.local` form) and the configured `extra` ones. No DNS lookup:
    a barn device offline must start at once; a fully qualified name goes in `http.hostnames`."""
    short = socket.gethostname().lower()
    names = [*LOOPBACK_NAMES, short, f"{short}.local", *(n.lower() for n in extra)]
    return list(dict.fromkeys(n for n in names if n))


def _host_name(header: str | None) -> str:
    """The name part of a Host header: `[::1]:8080` -> `::1`, `10.0.0.5:8080` -> `10.0.0.5`."""
    host = (header or "").strip()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostGuard:
    """TrustedHostMiddleware for names; IP address literals pass (they cannot be rebound)."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.trusted = TrustedHostMiddleware(app, allowed_hosts=allowed_hosts, www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _is_ip_literal(_host_name(Headers(scope=scope).get("host"))):
            await self.app(scope, receive, send)
            return
        await self.trusted(scope, receive, send)


class AuthFailures:
    """Per-client token buckets of failed attempts, and the once-a-minute log line about them."""

    MAX_CLIENTS = 4096  # beyond this many, clients with full buckets are forgotten

    def __init__(self, burst: int = 10, per_minute: float = 10.0, log_every_s: float = 60.0) -> None:
        self.burst, self.refill_per_s, self.log_every_s = burst, per_minute / 60.0, log_every_s
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._refused, self._limited, self._clients = 0, 0, set[str]()
        self._logged_at: float | None = None
        self._lock = threading.Lock()

    def _tokens(self, client: str, now: float) -> float:
        tokens, at = self._buckets.get(client, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.refill_per_s)

    def blocked(self, client: str) -> bool:
        """True while `client` has used up its failed attempts (counted as one more refusal)."""
        now = time.monotonic()
        with self._lock:
            if self._tokens(client, now) >= 1.0:
                return False
            self._limited += 1
            self._note(client, now)
            return True

    def failed(self, client: str) -> None:
        """One request from `client` with a wrong token."""
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) >= self.MAX_CLIENTS:
                self._buckets = {c: b for c, b in self._buckets.items() if self._tokens(c, now) < self.burst}
            self._buckets[client] = (self._tokens(client, now) - 1.0, now)
            self._refused += 1
            self._note(client, now)

    def _note(self, client: str, now: float) -> None:
        self._clients.add(client)
        if self._logged_at is not None and now - self._logged_at < self.log_every_s:
            return
        LOG.warning(
            "web: %d requests refused for a wrong access token and %d held back for repeated wrong tokens "
            "(from %s) since the last such line; the next one comes a minute or more after this one",
            self._refused,
            self._limited,
            ", ".join(sorted(self._clients)[:5]) + (" ..." if len(self._clients) > 5 else ""),
        )
        self._refused, self._limited, self._clients, self._logged_at = 0, 0, set(), now
