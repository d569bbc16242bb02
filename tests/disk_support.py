"""A real small filesystem for full-disk tests: a tmpfs mounted by the test (CI runs as root), filled and freed."""

from __future__ import annotations

import subprocess
from pathlib import Path
from collections.abc import Iterator

import pytest


def mount_tmpfs(folder: Path, size: str) -> None:
    """Mount a tmpfs of `size` (mount's syntax: 3m, 512k) on `folder`; skip with the reason where not permitted."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); CI runs as root")


def unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 3 MiB filesystem that the test can fill and free."""
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "3m")
    yield disk
    unmount(disk)


def fill(disk: Path, leave: int = 0) -> Path:
    """Write a file until the disk has no more than `leave` bytes free (ENOSPC); delete it to free the space."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
        if leave:
            handle.truncate(max(handle.tell() - leave, 0))
    return filler
