"""Jetson facts: the L4T release → JetPack, TensorRT, CUDA, Python (from `jetpack.tsv`), and the conditions a
benchmark ran under (power mode from `nvpmodel -q`, whether `jetson_clocks` locked the clocks).

Standard library only, and runnable as a file (`python3 fume_edge/service/jetson.py facts --shell`), because
`jetson_setup.sh` asks it before any venv exists. Everything reads under a `root` folder so tests can use a fake
filesystem. Figures differ by power mode and clock governor several-fold, so a benchmark records both.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

TABLE = Path(__file__).with_name("jetpack.tsv")
RELEASE_FILE = "etc/nv_tegra_release"
_RELEASE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([0-9.]+)")
_GPU_DEVFREQ = (".gpu", ".ga10b", ".gv11b", ".gp10b")  # the iGPU's devfreq node across Jetson generations


@dataclass(frozen=True)
class JetPack:
    """One row of jetpack.tsv plus the L4T release it was matched from."""

    l4t: str
    jetpack: str
    tensorrt: str
    cuda: str
    python: str
    numpy: str
    cuda_python: str
    support: str


def parse_release(text: str) -> str | None:
    """`# R36 (release), REVISION: 4.3, ...` → `36.4.3`; None when the text is not an L4T release line."""
    match = _RELEASE.search(text)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def read_release(root: Path = Path("/")) -> str | None:
    """The L4T release of the system under `root`, None when it is not a Jetson."""
    path = root / RELEASE_FILE
    return parse_release(path.read_text(errors="replace")) if path.is_file() else None


def lookup(l4t: str, table: Path = TABLE) -> JetPack | None:
    """The row with the longest l4t prefix of `l4t` (compared by dotted parts), None for an unknown release."""
    rows = [line.split("\t") for line in table.read_text().splitlines() if line and not line.startswith("#")]
    header, body = rows[0], rows[1:]
    parts = l4t.split(".")
    best: list[str] | None = None
    for row in body:
        prefix = row[0].split(".")
        if parts[: len(prefix)] == prefix and (best is None or len(prefix) > len(best[0].split("."))):
            best = row
    if best is None:
        return None
    fields = dict(zip(header, best, strict=True))
    fields["l4t"] = l4t
    return JetPack(**fields)


def power_mode(timeout_s: float = 5.0) -> str | None:
    """`nvpmodel -q` as `MAXN (mode 0)`; None where nvpmodel is absent or fails."""
    if shutil.which("nvpmodel") is None:
        return None
    try:
        out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=timeout_s).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_power_mode(out)


def parse_power_mode(text: str) -> str | None:
    """`NV Power Mode: MAXN` followed by the mode id on its own line → `MAXN (mode 0)`."""
    match = re.search(r"NV Power Mode:\s*(\S+)\s*\n\s*(\d+)", text)
    if match:
        return f"{match.group(1)} (mode {match.group(2)})"
    match = re.search(r"NV Power Mode:\s*(\S+)", text)
    return match.group(1) if match else None


def _pinned(min_file: Path, max_file: Path) -> bool | None:
    try:
        return min_file.read_text().strip() == max_file.read_text().strip()
    except OSError:
        return None


def clocks_locked(root: Path = Path("/")) -> bool | None:
    """True when every online CPU and the GPU run with minimum = maximum frequency (what `jetson_clocks` sets);
    None when the frequencies cannot be read."""
    checks = [
        _pinned(p / "scaling_min_freq", p / "scaling_max_freq")
        for p in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq"))
    ]
    checks += [
        _pinned(p / "min_freq", p / "max_freq")
        for p in sorted((root / "sys/class/devfreq").glob("*"))
        if p.name.endswith(_GPU_DEVFREQ)
    ]
    if not checks or None in checks:
        return None
    return all(checks)


@dataclass(frozen=True)
class BenchConditions:
    """What a Jetson benchmark figure depends on besides the model: recorded beside every figure."""

    l4t: str
    jetpack: str | None
    power_mode: str | None
    clocks_locked: bool | None

    def summary(self) -> str:
        clocks = {True: "clocks locked", False: "clocks not locked", None: "clocks unknown"}[self.clocks_locked]
        return (
            f"JetPack {self.jetpack or 'unknown'} (L4T {self.l4t}), power mode {self.power_mode or 'unknown'}, {clocks}"
        )

    def advice(self) -> str | None:
        """The commands for reproducible figures, when the conditions are not the documented ones."""
        if self.clocks_locked and self.power_mode and "mode 0" in self.power_mode:
            return None
        return "for comparable figures: sudo nvpmodel -m 0 && sudo jetson_clocks (docs/benchmarks.md)"


def bench_conditions(root: Path = Path("/")) -> BenchConditions | None:
    """The benchmark conditions of this Jetson; None when this is not a Jetson."""
    l4t = read_release(root)
    if l4t is None:
        return None
    row = lookup(l4t)
    return BenchConditions(l4t, row.jetpack if row else None, power_mode(), clocks_locked(root))


def _main() -> int:
    parser = argparse.ArgumentParser(description="Jetson facts for jetson_setup.sh")
    parser.add_argument("what", choices=("facts", "conditions"))
    parser.add_argument("--root", type=Path, default=Path("/"))
    parser.add_argument("--assume", metavar="L4T", help="facts of this L4T release instead of the system's")
    args = parser.parse_args()
    if args.what == "conditions":
        conditions = bench_conditions(args.root)
        print("not a Jetson" if conditions is None else conditions.summary())
        if conditions is not None and conditions.advice():
            print(conditions.advice())
        return 0
    l4t = args.assume or read_release(args.root)
    row = lookup(l4t) if l4t else None
    values = asdict(row) if row else {"l4t": l4t or ""}
    for key, value in values.items():
        print(f"{key.upper()}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
