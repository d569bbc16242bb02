"""A real PostgreSQL 15 for the fleet tests, started in a temporary data directory on a free port.

PostgreSQL refuses to run as root, so under root the server runs as `nobody` (runuser) from a directory it owns.
Tests skip with the reason when the server binaries are absent (`.ci/run` installs Debian's `postgresql`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_broker import free_port

PG_BIN = next(
    (Path(p) for p in ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin") if (Path(p) / "initdb").exists()),
    None,
)


class Postgres:
    """`start()`/`stop()` keep the data; `create_db` makes a database reached as a trusted superuser over TCP."""

    def __init__(self) -> None:
        assert PG_BIN is not None
        self.dir = Path(tempfile.mkdtemp(prefix="fume-pg-"))
        self.port = free_port()
        self.data = self.dir / "data"
        self._as = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        if self._as:
            os.chmod(self.dir, 0o755)
            shutil.chown(self.dir, "nobody")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "fume", "--auth=trust", "-E", "UTF8", "--no-sync")

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, cwd=self.dir)

    def start(self) -> None:
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1",
            "start",
        )

    def create_db(self, name: str) -> str:
        """A new empty database; its DSN."""
        self._run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "fume", name)
        return f"postgresql://fume@127.0.0.1:{self.port}/{name}"

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            [*self._as, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"],
            capture_output=True,
            cwd=self.dir,
        )

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    if PG_BIN is None:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql; .ci/run does)")
    server = Postgres()
    server.start()
    yield server
    server.remove()
