"""`fume-edge bench`: resolve the model files, prepare every backend, measure them in turns, report and save; and
`fume-edge bench --estimate DEVICE`: the roofline bound and the expected FPS per Jetson, as a table and JSON."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fume_edge.bench.backend_names import BACKENDS, DEFAULT_BACKENDS
from fume_edge.bench.backends import DYNAMIC_LOOP_BATCH, Models, Unavailable, make_runner
from fume_edge.bench.estimate import estimate, load_devices
from fume_edge.bench.machine import busy_cpu_seconds, machine_info, machine_label
from fume_edge.bench.model import Runner, latency_stats, measure, summarize
from fume_edge.bench.report import print_report, ratios, write_json
from fume_edge.console import COMPACT_BELOW, report_table
from fume_edge.errors import FumeEdgeError
from fume_edge.hashing import sha256_file


@dataclass
class BenchOptions:
    models: list[Path]
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    iterations: int = 100
    warmup: int = 10
    threads: int | None = None
    device: str = "auto"
    pipeline: bool = False
    stations: int = 1  # end to end: this many stations of in-memory frames share the loop (implies pipeline)
    target_fps: float = 100.0
    check: bool = False
    json_out: Path | None = None
    calibration: Path | None = None


def resolve_models(paths: list[Path], console: Console) -> Models:
    """Sort the given files into checkpoint, ONNX and engine; none: the bundled model; a .pt without an .onnx is
    exported (cached)."""
    if not paths:
        from fume_edge.assets import default_model_path

        paths = [default_model_path()]
    checkpoint = onnx = engine = None
    for path in paths:
        if not path.is_file():
            raise FumeEdgeError(
                f"{path}: model file not found; pass a .pt checkpoint, an .onnx export and/or an .engine"
            )
        suffix = path.suffix.lower()
        if suffix == ".pt":
            checkpoint = path
        elif suffix == ".onnx":
            onnx = path
        elif suffix in (".engine", ".plan"):
            engine = path
        else:
            raise FumeEdgeError(
                f"{path}: bench takes a .pt checkpoint, an .onnx export and/or a TensorRT .engine, not {suffix!r}"
            )
    if onnx is None and checkpoint is not None:
        from fume_edge.bench.int8 import cache_dir
        from fume_edge.deploy.onnx.onnx_export import export_onnx

        onnx = cache_dir() / "bench" / f"{sha256_file(checkpoint)[:16]}.onnx"
        if not onnx.is_file():
            with console.status(f"exporting {checkpoint.name} to ONNX for the ONNX Runtime rows"):
                export_onnx(checkpoint, onnx)
    return Models(checkpoint, onnx, engine=engine)


def parse_backends(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise FumeEdgeError(f"--backends {text!r}: choose from {', '.join(BACKENDS)} (comma-separated)")
    return names


def _piped(console: Console, text: str) -> None:
    """A progress line where the spinner and bars cannot show (output to a pipe or file): a line per finished step."""
    if not console.is_terminal:
        console.print(text, highlight=False, soft_wrap=True)


def _prepare(options: BenchOptions, models: Models, console: Console) -> tuple[list[Runner], list[Unavailable]]:
    runners: list[Runner] = []
    missing: list[Unavailable] = []
    for name in options.backends:
        with console.status(
            f"preparing {name} (INT8 quantizing takes a minute the first time)"
            if name == "onnxruntime-int8"
            else f"preparing {name}"
        ):
            made = make_runner(name, models, options.device, options.threads)
        _piped(console, f"{name}: not measured ({made.reason})" if isinstance(made, Unavailable) else f"{name}: ready")
        (missing if isinstance(made, Unavailable) else runners).append(made)  # type: ignore[arg-type]
    return runners, missing


def _measure(runners: list[Runner], options: BenchOptions, console: Console) -> dict[str, Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        total = options.iterations * len(runners)
        task = progress.add_task("model-only, backends in turns", total=total)
        _piped(console, f"measuring {', '.join(r.name for r in runners)} in turns, {options.iterations} calls each")
        done = [0]

        def tick(_: str) -> None:
            progress.advance(task)
            done[0] += 1
            if done[0] % max(1, total // 10) == 0 and done[0] < total:
                _piped(console, f"  {done[0]}/{total} timed calls")

        samples = measure(runners, options.iterations, options.warmup, tick=tick)
    for runner in runners:
        _piped(console, f"{runner.name}: model p50 {latency_stats(samples[runner.name].model_ms)['p50_ms']:.2f} ms")
    return samples


def _pipeline_rows(
    options: BenchOptions, models: Models, runners: list[Runner], rows: list[dict[str, Any]], console: Console
) -> list[dict[str, Any]]:
    """End to end for every measured row whose model file the loop can load.

    Each end-to-end run is bracketed by a model-only block of the same backend just before and just after it, and
    the ratio and the pipeline's CPU time are taken against those, so a change in machine load between the
    model-only table and this run does not show up as pipeline cost.
    """
    from fume_edge.bench.pipeline import render_frames, run_pipeline

    results = []
    frames: dict[str, Any] = {}
    by_name = {r.name: r for r in runners}
    for row in rows:
        name, path = row["backend"], row.get("model_file")
        if row["status"] != "measured" or path is None:
            continue
        device = "cpu" if name == "onnxruntime-int8" else options.device
        if not frames:
            frames = render_frames(tuple(row["input_size"]))
        loop_model = batched_model(Path(path), name, options.stations, models, console)
        with console.status(
            f"end to end: {name}, {options.stations} station(s) × {options.iterations} pairs through "
            "the capture loop, between two model-only blocks"
        ):
            before = measure([by_name[name]], options.iterations, min(options.warmup, 2))[name]
            run = run_pipeline(
                loop_model,
                frames,
                options.iterations,
                options.warmup,
                device=device,
                threads=options.threads,
                stations=options.stations,
            )
            after = measure([by_name[name]], options.iterations, min(options.warmup, 2))[name]
        adjacent = [latency_stats(s.model_ms)["fps"] for s in (before, after)]
        _piped(console, f"{name} end to end: {run.fps:.1f} FPS")
        model_fps = sum(adjacent) / 2
        model_cpu = float(np.median(before.model_cpu_ms + after.model_cpu_ms))
        results.append(
            {
                "backend": name,
                "device": row["device"],
                "fps": round(run.fps, 2),
                "frames": run.frames,
                "model_only_fps_before_after": adjacent,
                "ratio_to_model_only": round(run.fps / model_fps, 3),
                "cpu_ms_per_frame": round(run.cpu_ms_per_frame, 3),
                "model_cpu_ms_per_call": round(model_cpu, 3),
                "pipeline_cpu_ms_per_frame": round(run.cpu_ms_per_frame - model_cpu, 3),
                "pipeline_own_ms_per_frame": round(run.own_ms_per_frame, 3),
                "stage_ms": run.stage_ms,
                "pairs": run.pairs,
                "singles": run.singles,
                "stations": options.stations,
                "loop_model": loop_model.name,
                "batch": run.batch,
                "calls": run.calls,
                "padded": run.padded,
                "station_fps": {k: round(v, 2) for k, v in run.station_fps.items()},
                "fairness_min_over_max": round(min(run.station_fps.values()) / max(run.station_fps.values()), 3),
                "latency_ms": {k: round(v, 2) for k, v in run.latency_ms.items()},
            }
        )
    return results


def batched_model(path: Path, backend: str, stations: int, models: Models, console: Console) -> Path:
    """The model the loop runs for `stations` stations: the ONNX export at batch N (made from the checkpoint once,
    cached; dynamic where `DYNAMIC_LOOP_BATCH` says so; for INT8, that export quantized like the row's model) so
    one call serves every station; the measured file itself for one station, for torch (any batch) and
    where no batch-N export can be made (a given .onnx without its checkpoint: the stations then take turns, one
    pair per call)."""
    if stations == 1 or backend not in ("onnxruntime", "onnxruntime-int8") or models.checkpoint is None:
        return path
    from fume_edge.bench.int8 import batched_int8_model, cache_dir
    from fume_edge.deploy.onnx.onnx_export import export_onnx

    dynamic = DYNAMIC_LOOP_BATCH.get(backend, False)
    kind = "d" if dynamic else "b"
    cached = cache_dir() / "bench" / f"{sha256_file(models.checkpoint)[:16]}.{kind}{stations}.onnx"
    if not cached.is_file():
        with console.status(f"exporting {models.checkpoint.name} at batch {stations} for the loop"):
            export_onnx(models.checkpoint, cached, batch=stations, dynamic_batch=dynamic)
    if backend == "onnxruntime-int8":
        with console.status(f"quantizing the batch-{stations} export for the loop"):
            return batched_int8_model(path, cached, models)
    return cached


def _result(
    options: BenchOptions, models: Models, runners: list[Runner], missing: list[Unavailable], samples: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows (measured and not) and the JSON-ready result around them, with the machine and the model."""
    size = runners[0].pre()[0].shape[-1:-3:-1] if runners else None
    rows: list[dict[str, Any]] = [
        {
            "backend": r.name,
            "status": "measured",
            "precision": r.precision,
            "device": r.device,
            "note": r.note,
            "input_size": list(size) if size else None,
            "model_file": str(r.model_file) if r.model_file else None,
            **summarize(samples[r.name]),
        }
        for r in runners
    ]
    rows += [{"backend": m.name, "status": "not measured", "reason": m.reason, "fix": m.fix} for m in missing]
    rows.sort(key=lambda r: options.backends.index(r["backend"]))
    info = machine_info()
    model_file = models.onnx or models.checkpoint or models.engine
    assert model_file is not None
    return rows, {
        "benchmark": "fume-edge bench",
        "command": " ".join(["fume-edge", *sys.argv[1:]]),
        "machine": info,
        "machine_label": machine_label(info),
        "other_processes_cores_busy": None,
        "model": {
            "name": model_file.name,
            "path": str(model_file),
            "sha256": sha256_file(model_file),
            "checkpoint": str(models.checkpoint) if models.checkpoint else None,
            "input_size": "x".join(map(str, size)) if size else None,
        },
        "settings": {
            "iterations": options.iterations,
            "warmup": options.warmup,
            "threads": options.threads,
            "device": options.device,
            "target_fps": options.target_fps,
            "batch": 1,
        },
        "rows": rows,
        "ratios": ratios(rows),
    }


def bench_command(options: BenchOptions, console: Console) -> int:
    """Run the benchmark; returns the exit code (1 with --check when no measured row meets the target)."""
    if options.iterations < 1 or options.warmup < 0:
        raise FumeEdgeError("--iterations must be at least 1 and --warmup at least 0")
    models = resolve_models(options.models, console)
    models.int8_calibration = options.calibration
    runners, missing = _prepare(options, models, console)
    started, busy, own = time.perf_counter(), busy_cpu_seconds(), time.process_time()
    try:
        samples = _measure(runners, options, console) if runners else {}
        rows, result = _result(options, models, runners, missing, samples)
        if options.pipeline or options.stations > 1:
            result["pipeline"] = _pipeline_rows(options, models, runners, rows, console)
    finally:
        for runner in runners:
            runner.close()
    wall = time.perf_counter() - started
    if busy is not None:
        used = (busy_cpu_seconds() or 0.0) - busy - (time.process_time() - own)
        result["other_processes_cores_busy"] = round(max(0.0, used) / wall, 2)
    print_report(result, console)
    if models.onnx is not None and any(r.name == "onnxruntime" for r in runners):
        from fume_edge.bench.paced import comparison_line, spinning_comparison

        with console.status("ONNX Runtime CPU per frame, camera-paced, intra-op spinning on and off"):
            paced = spinning_comparison(models.onnx, min(options.iterations, 30), options.device, options.threads)
        result["onnxruntime_paced_cpu"] = [asdict(p) for p in paced]
        console.print(comparison_line(*paced), highlight=False)
    if options.json_out is not None:
        write_json(result, options.json_out)
        console.print(f"wrote {options.json_out}", highlight=False)
    measured = [r["model"]["fps"] for r in rows if r["status"] == "measured"]
    measured += [r["fps"] for r in result.get("pipeline", [])]
    if not any(r["status"] == "measured" for r in rows if r["backend"].startswith("tensorrt")):
        console.print(
            "next: on a GPU or Jetson with TensorRT, `fume-edge bench --backends tensorrt-fp16,tensorrt-int8`;"
            " before buying one, `fume-edge bench --estimate orin-nano-8gb`",
            style="dim",
            highlight=False,
        )
    if options.check and not any(fps >= options.target_fps for fps in measured):
        console.print(f"--check: no measured backend reaches {options.target_fps:g} FPS", style="red")
        return 1
    return 0


def _onnx_model(models: list[Path]) -> Path:
    if not models:
        from fume_edge.assets import default_model_path

        return default_model_path()
    onnx = [m for m in models if m.suffix.lower() == ".onnx"]
    if not onnx:
        raise FumeEdgeError(f"{models[0]}: --estimate reads an ONNX graph; export one with `fume-edge export`")
    if not onnx[0].is_file():
        raise FumeEdgeError(f"{onnx[0]}: ONNX file not found")
    return onnx[0]


def print_estimate(result: dict[str, Any], target_fps: float, console: Console) -> None:
    table = report_table(
        f"Roofline UPPER BOUND (not a measurement) · {Path(result['model']).name} · "
        f"{result['gflops']:.2f} GFLOPs a pair · batch {result['batch']} (FPS: pairs per second)",
        console.width,
    )
    compact = console.width < COMPACT_BELOW
    names = (
        ("prec", "bound", "mem-bound", "expected", "30-FPS st.")
        if compact
        else ("precision", "bound FPS", "memory-bound", "expected FPS", "30-FPS stations")
    )
    for column in ("device", *names, f"vs {target_fps:g} FPS"):
        table.add_column(
            column,
            justify="left" if column in ("device", names[0]) else "right",
            no_wrap=column == "device" or column.startswith("vs "),
        )
    for row in result["rows"]:
        low, high = row["expected_fps"]
        verdict = (
            "[green]expected to meet"
            if low >= target_fps
            else "[yellow]may meet"
            if high >= target_fps
            else "[yellow]bound meets, expected below"
            if row["bound_fps"] >= target_fps
            else "[red]cannot meet"
        )
        few, many = row["stations_at_30fps"]
        table.add_row(
            row["device"],
            row["precision"],
            f"≤ {row['bound_fps']:.0f}",
            f"{100 * row['memory_bound_share']:.0f} %",
            f"{low:.0f}–{high:.0f}",
            f"{few}–{many}",
            verdict,
        )
    console.print(table)
    ref = result["reference"]
    console.print(
        f"bound: every node at its roofline, max(FLOPs / dense peak, bytes / bandwidth), pointwise ops fused; "
        f"{result['mb_moved']['fp16']:.0f} MB moved per frame at FP16, {result['mb_moved']['int8']:.0f} MB "
        "at INT8. No engine runs faster.",
        highlight=False,
    )
    console.print(
        f"expected: the efficiency (achieved FLOPs / dense peak) {ref['model']} reached on {ref['device']} "
        f"({ref['fp16_ms']} ms FP16, {ref['int8_ms']} ms INT8; {ref['source']}): high end, this model's FLOPs "
        "at that efficiency; low end, the whole roofline (memory traffic too) at it.",
        highlight=False,
    )
    console.print(
        "peaks: dense GPU figures (NVIDIA's headline TOPS are sparse and include the DLAs); sources in "
        "fume_edge/bench/devices.yaml. Measure on the device: `fume-edge bench --backends tensorrt-fp16,"
        "tensorrt-int8` at `sudo nvpmodel -m 0 && sudo jetson_clocks`.",
        style="dim",
        highlight=False,
    )


def estimate_command(
    models: list[Path], spec: str, target_fps: float, json_out: Path | None, console: Console, batch: int = 1
) -> None:
    devices = load_devices(spec)
    result = estimate(_onnx_model(models), devices, batch)
    print_estimate(result, target_fps, console)
    if json_out is not None:
        write_json(
            {"benchmark": "fume-edge bench --estimate", "kind": "upper bound, not a measurement", **result}, json_out
        )
        console.print(f"wrote {json_out}", highlight=False)
