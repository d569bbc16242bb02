"""Secrets at rest: what fume-edge writes to disk never holds a password, and where a password may come from.

`redact` is applied to everything that is stored about a run (the `runs.config` column keeps the options and the
merged run.yaml): URL user info (`mqtt://user:pass@host` -> `mqtt://***@host`) and the value of any key that
names a secret are replaced. The MQTT password itself is best kept out of URLs, shell history and run.yaml:
`FUME_EDGE_MQTT_PASSWORD` in the service's environment, or `sinks.mqtt.password_file`, a file that only its owner
may read (mode 0600 or stricter; anything looser is refused, as ssh does with keys).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from fume_edge.errors import FumeEdgeError

MASK = "***"
PASSWORD_ENV = "FUME_EDGE_MQTT_PASSWORD"
_SECRET_KEY = re.compile(r"^(.*[_-])?(pass|password|passwd|secret|token|credentials?)$", re.IGNORECASE)
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#@\s]*)@")


def redact_text(text: str) -> str:
    """`text` with the user info of every URL in it masked."""
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with URL user info masked everywhere and secret-named keys' values masked."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            key: (MASK if isinstance(key, str) and _SECRET_KEY.search(key) and item is not None else redact(item))
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    return value


def read_password_file(path: str | Path, where: str) -> str:
    """The first line of a password file that only its owner can read; looser permissions are refused."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise FumeEdgeError(
                f"{where}: {path} is readable by group or others (mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FumeEdgeError(f"{where}: password file {path} not found") from None
    except OSError as exc:
        raise FumeEdgeError(f"{where}: cannot read password file {path} ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise FumeEdgeError(f"{where}: {path} is not UTF-8 text (byte {exc.start})") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise FumeEdgeError(f"{where}: password file {path} is empty; write the password on its first line")
    return lines[0]


def mqtt_password(url_password: str | None, password_file: str | None, where: str) -> str | None:
    """The MQTT password: from the URL, else `FUME_EDGE_MQTT_PASSWORD`, else the password file (one source only)."""
    sources = [
        name
        for name, given in (
            ("the URL", url_password is not None),
            (PASSWORD_ENV, bool(os.environ.get(PASSWORD_ENV))),
            ("password_file", password_file is not None),
        )
        if given
    ]
    if len(sources) > 1:
        raise FumeEdgeError(f"{where}: the MQTT password is given twice ({' and '.join(sources)}); keep one")
    if url_password is not None:
        return url_password
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if password_file is not None:
        return read_password_file(password_file, where + ".password_file")
    return None
