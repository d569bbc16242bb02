"""Who may read and who may write: the access rules of the web server.

- Bound to a loopback address without a token: reads are open (only this machine can connect), writes refused.
- Bound to any other address: a token is required at start (from `http.token_file`, else the environment
  variable `http.token_env`); reads need it unless `http.public_read`; writes always need it.
A request carries the token as `Authorization: Bearer TOKEN`; reads also accept the `fume_edge_token` cookie the
page sets (images cannot send headers). Writes take the header only, so another site cannot make a browser write
with its cookie. The token is compared in constant time and never logged or stored.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from fume_edge.errors import FumeEdgeError

COOKIE = "fume_edge_token"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:8080`) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise FumeEdgeError(f"--http {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080 (0.0.0.0:8080 for the LAN)")
    return host.strip("[]"), int(port)


def load_token(token_file: str | None, token_env: str) -> str | None:
    """The token from the file (first line) or the environment; None when neither is set."""
    if token_file is not None:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise FumeEdgeError(f"http.token_file {token_file}: cannot read it ({exc.strerror})") from None
        if not token:
            raise FumeEdgeError(f"http.token_file {token_file}: the file is empty; put the token on its first line")
        return token
    token = os.environ.get(token_env, "").strip()
    return token or None


@dataclass(frozen=True)
class AccessPolicy:
    token: str | None
    public_read: bool

    @classmethod
    def for_listen(cls, host: str, token: str | None, public_read: bool) -> "AccessPolicy":
        """Refuses to serve beyond this machine without a token."""
        if token is None and not is_loopback(host):
            raise FumeEdgeError(f"--http {host}: serving beyond this machine needs an access token; put one in "
                                "the file named by http.token_file or in $FUME_EDGE_TOKEN (http.token_env), or "
                                "listen on 127.0.0.1")
        return cls(token, public_read)

    def _matches(self, given: str | None) -> bool:
        return self.token is not None and given is not None and hmac.compare_digest(given.encode(),
                                                                                   self.token.encode())

    @staticmethod
    def _bearer(headers: Mapping[str, str]) -> str | None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None

    def may_read(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
        if self.token is None or self.public_read:
            return True
        return self._matches(self._bearer(headers)) or self._matches(cookies.get(COOKIE))

    def may_write(self, headers: Mapping[str, str]) -> bool:
        return self._matches(self._bearer(headers))
