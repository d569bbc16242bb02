"""Who may read and who may write: the access rules of the web server, and where its token comes from.

There is always a token. It is the configured one (`http.token_file`, else the environment variable named by
`http.token_env`), else one generated at the first start and kept in `web-token` beside the alert database (mode
0600, reused by every later start), printed with the page's address as `http://HOST:PORT/#token=...`: the page
reads the token from the fragment (which never reaches a server or its logs), keeps it and removes it from the
address bar.

- Writes (setting the subject) always need the token, sent as `Authorization: Bearer TOKEN`; never a cookie, so
  another site cannot make a browser write with it.
- Reads are open on a loopback bind (only this machine connects; `guards.HostGuard` stops DNS rebinding) and with
  `http.public_read`; otherwise they need the header or the `fume_edge_token` cookie the page sets (images
  cannot send headers).
- Beyond loopback a configured token needs `MIN_TOKEN_CHARS` characters; generated ones have 32.
The token is compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fume_edge.errors import FumeEdgeError

COOKIE = "fume_edge_token"
TOKEN_FILE_NAME = "web-token"
MIN_TOKEN_CHARS = 16


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
    """The configured token: from the file (first line) or the environment; None when neither is set."""
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


def stored_token(state_dir: Path) -> tuple[str, Path]:
    """The generated token in `state_dir/web-token`, made (mode 0600) at the first start and reused after."""
    path = state_dir / TOKEN_FILE_NAME
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            token = path.read_text().strip()
            os.chmod(path, 0o600)
            if len(token) >= MIN_TOKEN_CHARS:
                return token, path
            raise FumeEdgeError(
                f"{path}: not a token fume-edge made (too short); delete the file and start again to make a new one"
            ) from None
        token = secrets.token_urlsafe(24)
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
        return token, path
    except OSError as exc:
        raise FumeEdgeError(
            f"{path}: cannot keep the web access token there ({exc.strerror}); set "
            "http.token_file or $FUME_EDGE_TOKEN instead"
        ) from None


@dataclass(frozen=True)
class AccessPolicy:
    token: str
    open_reads: bool
    generated: bool = False  # made by fume-edge (printed with the page address), not configured
    token_file: Path | None = None  # where a generated token is kept

    @classmethod
    def for_listen(cls, host: str, configured: str | None, public_read: bool, state_dir: Path | None) -> AccessPolicy:
        """The configured token (long enough beyond loopback), else the generated one: kept in `state_dir`, or
        for this process only when it is None (a server that may not write, e.g. on a read-only archive)."""
        loopback = is_loopback(host)
        if configured is not None:
            if not loopback and len(configured) < MIN_TOKEN_CHARS:
                raise FumeEdgeError(
                    f"{host}: the access token has {len(configured)} characters; serving "
                    f"beyond this machine needs at least {MIN_TOKEN_CHARS} (e.g. from "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`)"
                )
            return cls(configured, loopback or public_read)
        if state_dir is None:
            return cls(secrets.token_urlsafe(24), loopback or public_read, generated=True)
        token, path = stored_token(state_dir)
        return cls(token, loopback or public_read, generated=True, token_file=path)

    def _matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    @staticmethod
    def _bearer(headers: Mapping[str, str]) -> str | None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None

    def may_read(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
        return self.open_reads or self._matches(self._bearer(headers)) or self._matches(cookies.get(COOKIE))

    def presented(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
        """Whether the request carried a token at all (a wrong one is a guess; none is a page without it yet)."""
        return self._bearer(headers) is not None or COOKIE in cookies

    def may_write(self, headers: Mapping[str, str]) -> bool:
        return self._matches(self._bearer(headers))

    def page_url(self, base: str) -> str:
        """The address to open: with the token in the fragment when it was generated (the user has no other
        copy at hand), bare when the user configured it."""
        return f"{base}/#token={self.token}" if self.generated else f"{base}/"
