"""`fume-edge bundle install` into a running loop: time from the install call to the swap, and the inference pause
at the swap, on the ONNX Runtime path.

    python benchmarks/bundle_swap.py [--fps 10] [--threads 1] [--val-count 4]

A synthetic loop (two scripted cameras at --fps, the bundled model, a real alert service, a `SwappableBackend`
followed by the `models/current` watcher, poll 1 s as in a run) infers while a signed bundle of the bundled model
is verified, unpacked, gated and switched in the same process (the gate shares the CPU with the loop, as on a
device). Writes benchmarks/results/bundle_swap_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from fume_edge.alerts.service import AlertService
from fume_edge.assets import default_model_path
from fume_edge.bench.machine import machine_info
from fume_edge.bundle.gate import GateSettings
from fume_edge.bundle.install import InstallOptions, install_bundle
from fume_edge.bundle.keys import generate_keypair
from fume_edge.bundle.live import HealthSettings, ModelUpdates
from fume_edge.bundle.make import MakeOptions, make_bundle
from fume_edge.bundle.store import ModelStore
from fume_edge.data.config import load_data_config
from fume_edge.data.pairing import run_pairing
from fume_edge.data.synth_dataset import plan_sessions, write_synthetic_dataset
from fume_edge.hashing import sha256_file
from fume_edge.pipeline.capture import CameraStream, FrameHub
from fume_edge.pipeline.config import load_run_config
from fume_edge.pipeline.loop import Pipeline
from fume_edge.pipeline.prepare import ModelInputs
from fume_edge.runtime.base import load_backend
from fume_edge.runtime.holder import SwappableBackend

RESULTS = Path(__file__).resolve().parent / "results"
CAMS = ("co2", "ch4")


class NoiseCamera:
    """A live reader: noise frames at `fps`."""

    live = True

    def __init__(self, name: str, fps: float, seed: int) -> None:
        self.name, self.fps, self._rng, self._next = name, fps, np.random.default_rng(seed), time.monotonic()

    def read(self) -> tuple[np.ndarray, float]:
        self._next += 1.0 / self.fps
        time.sleep(max(0.0, self._next - time.monotonic()))
        return self._rng.integers(0, 256, (120, 160), dtype=np.uint8), time.monotonic()

    def close(self) -> None:
        pass


def _bundle(folder: Path, val_count: int) -> tuple[Path, Path]:
    settings = folder / "data.yaml"
    settings.write_text("synthetic: {width: 128, height: 96}\n", encoding="utf-8")
    config = load_data_config(settings)
    annotations = write_synthetic_dataset(
        folder / "raw", plan_sessions(config.synthetic, config.ph_classes, 24, 3), config.synthetic, 3
    )
    run_pairing(annotations, folder / "paired", config.pairing, config.ph_classes)
    key, public = generate_keypair(folder / "keys" / "bench.key")
    trusted = folder / "trusted"
    trusted.mkdir()
    (trusted / public.name).write_bytes(public.read_bytes())
    model = default_model_path()
    bundle = folder / "bench.fume"
    make_bundle(
        MakeOptions(
            model=model,
            val=folder / "paired" / "paired_val.csv",
            key=key,
            output=bundle,
            card=model.with_name("MODEL_CARD.md"),
            version="bench-v2",
            val_count=val_count,
        )
    )
    return bundle, trusted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps", type=float, default=10.0, help="camera FPS of the synthetic loop")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads of the running model")
    parser.add_argument("--val-count", type=int, default=4, help="validation samples in the bundle")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bundle-swap-") as temp:
        folder = Path(temp)
        bundle, trusted = _bundle(folder, args.val_count)
        store = ModelStore(folder / "models")
        model = default_model_path()
        holder = SwappableBackend(load_backend(model, device="cpu", threads=args.threads), sha256_file(model))
        config, _ = load_run_config(None, {"sinks": {"sqlite": {"path": str(folder / "alerts.db")}}})
        service = AlertService(config.alerts, config.sinks, device_id="bench", model_sha=holder.model_sha)
        hub = FrameHub(CAMS, capacity=4, lossless=False)
        streams = {
            gas: CameraStream(
                gas,
                NoiseCamera(gas, args.fps, i),
                reopen=None,
                hub=hub,  # type: ignore[arg-type]
                paced=False,
                time_offset_s=0.0,
                reconnect_s=(0.2, 0.2),
            )
            for i, gas in enumerate(CAMS)
        }
        results: list[tuple[float, str | None]] = []
        pipeline = Pipeline(
            streams,
            hub,
            holder,
            service,
            ModelInputs(CAMS, dict.fromkeys(CAMS, holder.contract.preprocessing)),
            tolerance_s=0.025,
            silent_after_s=5.0,
            tick_s=0.05,
            stats_interval_s=60.0,
            on_result=lambda pair, prediction: results.append((time.monotonic(), holder.version)),
        )
        done = threading.Event()
        loop = threading.Thread(target=lambda: pipeline.run(done.is_set))
        service.start()
        with ModelUpdates(
            holder, store, HealthSettings(window_s=60.0, min_fps=0.1), device="cpu", threads=args.threads
        ):
            loop.start()
            time.sleep(5.0)  # steady state first
            started = time.monotonic()
            install = install_bundle(
                bundle,
                InstallOptions(models=store.root, trusted_keys=trusted, gate=GateSettings(min_fps=0.1, device="cpu")),
            )
            while holder.version != "bench-v2":
                time.sleep(0.01)
            swapped = time.monotonic()
            time.sleep(5.0)
            done.set()
            loop.join()
        service.close(pipeline.stats(), "completed")
        holder.close()
    times = np.array([t for t, _ in results])
    first_new = next(i for i, (_, v) in enumerate(results) if v == "bench-v2")
    gaps_ms = np.diff(times) * 1000
    steady = gaps_ms[: np.searchsorted(times, started) - 1]
    report = {
        "machine": machine_info(),
        "camera_fps": args.fps,
        "threads": args.threads,
        "val_count": args.val_count,
        "install_call_s": round(install.seconds, 2),
        "install_to_swap_s": round(swapped - started, 2),
        "swap_gap_ms": round(float(gaps_ms[first_new - 1]), 1),
        "p100_gap_before_install_ms": round(float(steady.max()), 1),
        "p50_gap_before_install_ms": round(float(np.median(steady)), 1),
        "p100_gap_during_install_ms": round(float(gaps_ms[np.searchsorted(times, started) : first_new].max()), 1),
        "inferences": len(results),
        "inferences_after_swap": len(results) - first_new,
    }
    out = args.out or RESULTS / "bundle_swap_cpu.json"
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
