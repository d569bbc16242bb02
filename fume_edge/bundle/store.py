"""The device's installed models: `models/<version>/` folders, `current` and `previous` symlinks, an event log.

Crash safety comes from two atomic steps: a version folder appears only by renaming a complete staging folder
(`.staging-*`, removed on the next install), and `current` changes only by `os.replace` of a new symlink over the
old. A kill at any moment leaves `current` naming a complete folder, old or new.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fume_edge.alerts.event import iso_utc
from fume_edge.errors import FumeEdgeError

MODELS_ENV = "FUME_EDGE_MODELS"  # the models folder when --models-dir is not given
DEFAULT_MODELS_DIR = Path("models")  # relative: the service runs in /var/lib/fume-edge
DEPLOY_NAME = "deploy.json"
EVENTS_NAME = "events.jsonl"
CURRENT, PREVIOUS = "current", "previous"
_STAGING_PREFIX = ".staging-"
_WARNINGS = {"model_refused", "model_rejected", "model_swap_failed", "model_rolled_back"}  # logged as warnings
log = logging.getLogger("fume_edge.bundle")


def models_dir(folder: Path | None = None) -> Path:
    return folder or Path(os.environ.get(MODELS_ENV) or DEFAULT_MODELS_DIR)


@dataclass(frozen=True)
class InstalledModel:
    """What `deploy.json` in a version folder says: the file the run loads and the figures it passed the gate with."""

    version: str
    model: str  # the deployable file, relative to the version folder (an engine, or the ONNX on ORT)
    model_sha256: str  # of the bundle's FP32 ONNX: the model sha alert events carry
    backend: str  # tensorrt-int8 | tensorrt-fp16 | onnxruntime
    installed_at: str
    gate: dict[str, Any]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    # -- reading ---------------------------------------------------------------------------------------------
    def _link(self, name: str) -> str | None:
        try:
            return os.readlink(self.root / name)
        except (FileNotFoundError, OSError):
            return None

    def current(self) -> str | None:
        return self._link(CURRENT)

    def previous(self) -> str | None:
        return self._link(PREVIOUS)

    def installed(self, version: str) -> InstalledModel | None:
        path = self.root / version / DEPLOY_NAME
        try:
            return InstalledModel(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise FumeEdgeError(f"{path}: unreadable ({exc}); reinstall that version's bundle") from None

    def model_file(self, version: str) -> Path:
        model = self.installed(version)
        if model is None:
            raise FumeEdgeError(f"{self.root / version}: not an installed model version")
        return self.root / version / model.model

    def current_model(self) -> Path | None:
        """The file a run loads: the current version's deployable model (None: nothing installed here)."""
        current = self.current()
        return None if current is None or self.installed(current) is None else self.model_file(current)

    def versions(self) -> list[InstalledModel]:
        """Complete versions, oldest install first."""
        found = (
            [
                m
                for p in self.root.iterdir()
                if p.is_dir()
                and not p.is_symlink()
                and not p.name.startswith(".")
                and (m := self.installed(p.name)) is not None
            ]
            if self.root.is_dir()
            else []
        )
        return sorted(found, key=lambda m: m.installed_at)

    # -- writing ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def install_lock(self) -> Iterator[None]:
        """One install at a time (CLI, page, MQTT): the second is refused rather than sharing the staging area."""
        self.ensure()
        with open(self.root / ".install.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FumeEdgeError(f"{self.root}: another model install is running; wait for it to finish") from None
            yield  # the lock goes with the file handle, also when the process is killed

    def new_staging(self) -> Path:
        """A fresh staging folder; leftovers of a killed install are removed first (call under install_lock)."""
        self.ensure()
        for stale in self.root.glob(f"{_STAGING_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
        staging = self.root / f"{_STAGING_PREFIX}{os.getpid()}-{time.monotonic_ns()}"
        staging.mkdir()
        return staging

    def commit(self, staging: Path, model: InstalledModel) -> None:
        """Write deploy.json into the staging folder, then rename it to the version's folder (atomic)."""
        if (self.root / model.version).exists():
            raise FumeEdgeError(
                f"{self.root / model.version}: version {model.version} is already installed; "
                f"switch to it with `fume-edge bundle rollback {model.version}`"
            )
        deploy = staging / DEPLOY_NAME
        with open(deploy, "w", encoding="utf-8") as handle:
            json.dump(asdict(model), handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, self.root / model.version)
        _fsync_dir(self.root)

    def _point(self, name: str, version: str) -> None:
        temp = self.root / f".{name}.tmp-{os.getpid()}"
        temp.unlink(missing_ok=True)
        os.symlink(version, temp)
        os.replace(temp, self.root / name)
        _fsync_dir(self.root)

    def switch(self, version: str) -> str | None:
        """Make `version` current (the old current becomes previous); returns the old current."""
        if self.installed(version) is None:
            raise FumeEdgeError(f"{self.root / version}: not an installed model version; see `fume-edge bundle list`")
        old = self.current()
        if old is not None and old != version:
            self._point(PREVIOUS, old)
        self._point(CURRENT, version)
        return old

    def unset_current(self) -> None:
        """No current version: a run starts on its configured or bundled model (a rollback past the first
        install)."""
        (self.root / CURRENT).unlink(missing_ok=True)
        _fsync_dir(self.root)

    def prune(self, keep: int) -> list[str]:
        """Remove the oldest versions beyond `keep`, never the current or previous one; returns what went."""
        protected = {self.current(), self.previous()}
        versions = [m.version for m in self.versions()]
        removable = [v for v in versions if v not in protected]
        excess = max(0, len(versions) - keep)
        gone = removable[:excess]
        for version in gone:
            shutil.rmtree(self.root / version, ignore_errors=True)
        return gone

    # -- events ----------------------------------------------------------------------------------------------
    def event(self, name: str, **fields: Any) -> dict[str, Any]:
        """One model-update step: a log line and a line in models/events.jsonl (synced: it survives a power cut)."""
        record = {"time": iso_utc(time.time()), "event": name, **fields}
        log.log(
            logging.WARNING if name in _WARNINGS else logging.INFO,
            "%s %s",
            name,
            json.dumps(fields, sort_keys=True, default=str),
        )
        self.ensure()
        with open(self.root / EVENTS_NAME, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return record

    def events(self) -> list[dict[str, Any]]:
        path = self.root / EVENTS_NAME
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
