"""Inference FPS of `fume-edge run --http` with a client watching the page vs with nobody watching.

    python benchmarks/web_fps.py [--model MODEL.onnx] [--seconds 30] [--rounds 3] [--threads N]

Each measurement is one `fume-edge run --co2 synthetic --ch4 synthetic --pacing fast --http 127.0.0.1:PORT`
subprocess (every pair inferred as fast as the model allows, so inference takes all the CPU it can get): its FPS
is the run summary's inferences over elapsed seconds. "Watched" runs have a viewer in a separate process doing
what the page does on a phone: /api/status every second, both camera JPEGs every 0.5 s, /api/alerts and
/api/trend every 5 s, plus a Prometheus scrape of /metrics every 5 s. (A real phone renders the page itself; here
the viewer shares the device's CPUs, so its own cost counts against inference too.) Runs alternate watched and
unwatched round by round, so load from other processes hits both alike; the headline ratio is the median of
the per-round ratios. Target (issue 14): watched ≥ 0.95× unwatched. The JSON in benchmarks/results/ records the
machine (see pipeline_fps.machine) and every run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_fps import ROOT, machine, machine_slug  # noqa: E402

TARGET = 0.95
SUMMARY = re.compile(r"(\d+) inferences in ([\d.]+) s")
# (path, interval s): what the page asks for, and a Prometheus scrape.
PAGE_REQUESTS = (("/api/status", 1.0), ("/healthz", 1.0), ("/api/frame/co2.jpg", 0.5), ("/api/frame/ch4.jpg", 0.5),
                 ("/api/alerts?page=0&per_page=15", 5.0), ("/api/trend?hours=6", 5.0), ("/metrics", 5.0))


def watch(url: str, stop_at: float) -> None:
    """The viewer: the page's requests on their schedule until `stop_at` (or the server goes away)."""
    due = {path: 0.0 for path, _ in PAGE_REQUESTS}
    with httpx.Client(base_url=url, timeout=5) as client:
        while time.monotonic() < stop_at:
            now = time.monotonic()
            for path, interval in PAGE_REQUESTS:
                if now >= due[path]:
                    due[path] = now + interval
                    try:
                        client.get(path).raise_for_status()
                    except httpx.HTTPError:
                        return
            time.sleep(max(0.0, min(due.values()) - time.monotonic()))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_run(model: Path | None, seconds: float, threads: int | None, watched: bool, work: Path) -> dict[str, float]:
    """One `fume-edge run`; FPS from its summary line."""
    port = free_port()
    command = [sys.executable, "-m", "fume_edge", "run", "--co2", "synthetic", "--ch4", "synthetic", "--pacing",
               "fast", "--http", f"127.0.0.1:{port}", "--duration", str(seconds), "--quiet",
               "--alerts", str(work / f"alerts_{port}.db")]
    command += ["--model", str(model)] if model else []
    command += ["--threads", str(threads)] if threads else []
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    viewer = None
    if watched:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        viewer = multiprocessing.Process(target=watch, args=(f"http://127.0.0.1:{port}",
                                                             time.monotonic() + seconds + 60))
        viewer.start()
    output, _ = proc.communicate(timeout=seconds + 300)
    if viewer is not None:
        viewer.terminate()
        viewer.join()
    found = SUMMARY.search(output)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"fume-edge run failed:\n{output}")
    inferences, elapsed = int(found.group(1)), float(found.group(2))
    return {"watched": watched, "inferences": inferences, "elapsed_s": elapsed, "fps": inferences / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model file [default: the bundled model]")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each run")
    parser.add_argument("--rounds", type=int, default=3, help="watched/unwatched pairs")
    parser.add_argument("--threads", type=int, help="inference threads [default: the backend's]")
    parser.add_argument("--out", type=Path, help="JSON result [default: benchmarks/results/web_<machine>.json]")
    args = parser.parse_args()
    info = machine()
    runs, ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            pair = {}
            order = (False, True) if round_no % 2 == 0 else (True, False)
            for watched in order:
                pair[watched] = one_run(args.model, args.seconds, args.threads, watched, Path(tmp))
                runs.append({"round": round_no, **pair[watched]})
                print(f"round {round_no + 1}: {'watched  ' if watched else 'unwatched'} "
                      f"{pair[watched]['fps']:.2f} FPS ({pair[watched]['inferences']} in "
                      f"{pair[watched]['elapsed_s']:.1f} s)", flush=True)
            ratios.append(pair[True]["fps"] / pair[False]["fps"])
    ratio = statistics.median(ratios)
    info["load_average_at_end"] = list(__import__("os").getloadavg())
    result = {"benchmark": "web_fps", "target": TARGET, "ratio_median": ratio, "ratios": ratios,
              "passed": ratio >= TARGET, "seconds_per_run": args.seconds, "threads": args.threads,
              "model": str(args.model or "bundled"), "viewer_requests": PAGE_REQUESTS, "runs": runs,
              "machine": info, "command": " ".join(["python", *sys.argv])}
    out = args.out or ROOT / "benchmarks" / "results" / f"web_{machine_slug(info, args.threads)}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"watched / unwatched inference FPS: median {ratio:.3f} (rounds {', '.join(f'{r:.3f}' for r in ratios)}); "
          f"target >= {TARGET}: {'PASS' if ratio >= TARGET else 'FAIL'}; written to {out}")


if __name__ == "__main__":
    main()
