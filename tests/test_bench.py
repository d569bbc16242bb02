"""`fume-edge bench` end to end on the bundled model: every requested row, the TensorRT rows' reasons, the JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fume_edge.assets import default_model_path
from fume_edge.bench.model import Runner, block_size, latency_stats, measure
from fume_edge.hashing import sha256_file

pytestmark = pytest.mark.slow


def run_cli(*args: str, env_cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fume_edge", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**__import__("os").environ, "FUME_EDGE_CACHE": str(env_cache), "COLUMNS": "160"},
    )


def test_bench_all_cpu_rows_pipeline_and_json(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    done = run_cli(
        "bench",
        "--backends",
        "torch,onnxruntime,onnxruntime-int8,tensorrt-fp16,tensorrt-int8",
        "--pipeline",
        "--iterations",
        "3",
        "--warmup",
        "1",
        "--json",
        str(out),
        env_cache=tmp_path / "cache",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    result = json.loads(out.read_text())
    rows = {r["backend"]: r for r in result["rows"]}
    assert list(rows) == ["torch", "onnxruntime", "onnxruntime-int8", "tensorrt-fp16", "tensorrt-int8"]
    for name in ("torch", "onnxruntime", "onnxruntime-int8"):
        row = rows[name]
        assert row["status"] == "measured"
        assert len(row["samples_ms"]["model"]) == 3 and len(row["samples_ms"]["pre"]) == 3
        assert 0 < row["model"]["p50_ms"] <= row["model"]["max_ms"]
        assert row["model"]["fps"] == pytest.approx(1000 / row["model"]["p50_ms"], rel=0.01, abs=0.01)
        assert row["input_size"] == [640, 480]
    assert rows["onnxruntime-int8"]["precision"] == "int8"
    for name in ("tensorrt-fp16", "tensorrt-int8"):  # this machine has neither a GPU nor TensorRT
        assert rows[name]["status"] == "not measured"
        assert "no GPU" in rows[name]["reason"] or "TensorRT not installed" in rows[name]["reason"]
        assert rows[name]["fix"]
    assert "not measured" in done.stdout
    assert set(result["ratios"]) == {"onnxruntime vs torch", "onnxruntime-int8 vs onnxruntime"}
    ends = {p["backend"]: p for p in result["pipeline"]}
    assert set(ends) == {"onnxruntime", "onnxruntime-int8"}  # torch needs a .pt for the loop
    assert ends["onnxruntime"]["frames"] >= 1 and ends["onnxruntime"]["pairs"] >= 3
    assert ends["onnxruntime"]["ratio_to_model_only"] > 0
    assert result["model"]["sha256"] == sha256_file(default_model_path())
    machine = result["machine"]
    assert machine["cpu"]["usable_cores"] >= 1 and machine["versions"]["onnxruntime"]
    assert machine["gpu"] is None and "python" in machine
    assert list((tmp_path / "cache" / "bench").glob("*.int8.onnx"))  # the INT8 model is cached for the next run
    on, off = result["onnxruntime_paced_cpu"]  # process CPU per frame, camera-paced, spinning on and off
    assert (on["spinning"], off["spinning"]) == (True, False)
    assert min(on["cpu_ms_per_frame"], off["cpu_ms_per_frame"]) > 0
    assert "with intra-op spinning" in done.stdout


def test_check_fails_when_no_row_meets_the_target(tmp_path: Path) -> None:
    done = run_cli(
        "bench",
        "--backends",
        "onnxruntime",
        "--iterations",
        "2",
        "--warmup",
        "0",
        "--target-fps",
        "50000",
        "--check",
        env_cache=tmp_path,
    )
    assert done.returncode == 1
    assert "below 50000 FPS" in done.stdout


def test_bad_options_are_one_line(tmp_path: Path) -> None:
    done = run_cli("bench", "--backends", "onnxruntime,tpu", env_cache=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--backends" in done.stderr and "tensorrt-fp16" in done.stderr
    done = run_cli("bench", str(tmp_path / "missing.onnx"), env_cache=tmp_path)
    assert done.returncode == 2 and "model file not found" in done.stderr


def test_blocks_alternate_backends_and_count_every_call() -> None:
    order: list[str] = []

    def runner(name: str) -> Runner:
        return Runner(
            name,
            "fp32",
            "cpu",
            "",
            pre=lambda: (None, None, None),  # type: ignore[arg-type,return-value]
            model=lambda inputs: order.append(name),
            post=lambda raw: raw,
        )  # type: ignore[arg-type,return-value]

    samples = measure([runner("a"), runner("b")], iterations=12, warmup=2, tick=None)
    assert len(samples["a"].model_ms) == len(samples["b"].model_ms) == 12
    block = block_size(12)
    timed = order[4:]  # after 2 warm-up calls each
    assert (
        timed[:block] == ["a"] * block and timed[block : 2 * block] == ["b"] * block
    )  # then turns, one extra call each
    assert order.count("a") == 2 + 12 + (len(range(0, 12, block)) - 1)


def test_latency_stats_by_hand() -> None:
    stats = latency_stats([10.0, 20.0, 30.0, 40.0])
    assert stats["mean_ms"] == 25.0 and stats["p50_ms"] == 25.0 and stats["max_ms"] == 40.0
    assert stats["fps"] == 40.0


def test_an_engine_alone_is_judged_by_its_rows(tmp_path: Path) -> None:
    """What `jetson_setup.sh` runs (`bench ENGINE --check`): here, without a GPU, every row says why, and --check
    fails."""
    engine = tmp_path / "fume.engine"
    engine.write_bytes(b"plan")
    out = tmp_path / "b.json"
    done = run_cli("bench", str(engine), "--check", "--json", str(out), env_cache=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    rows = {r["backend"]: r for r in json.loads(out.read_text())["rows"]}
    assert {r["status"] for r in rows.values()} == {"not measured"}
    assert "no GPU" in rows["tensorrt-fp16"]["reason"]
    assert rows["onnxruntime"]["reason"] == "no ONNX model given"
    assert rows["torch"]["reason"] == "no checkpoint or ONNX model given"


def test_piped_output_shows_each_step_as_it_finishes(tmp_path: Path) -> None:
    done = run_cli(
        "bench",
        "--backends",
        "onnxruntime,tensorrt-fp16",
        "--pipeline",
        "--iterations",
        "10",
        "--warmup",
        "0",
        env_cache=tmp_path,
    )  # stdout is a pipe here, as under `| tee` or a service
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    table = next(i for i, line in enumerate(lines) if "fume-edge bench ·" in line)
    progress = lines[:table]
    assert "onnxruntime: ready" in progress
    assert any(line.startswith("tensorrt-fp16: not measured (") for line in progress)
    assert "measuring onnxruntime in turns, 10 calls each" in progress and "  5/10 timed calls" in progress
    assert any(line.startswith("onnxruntime: model p50 ") for line in progress)
    assert any(line.startswith("onnxruntime end to end: ") and line.endswith(" FPS") for line in progress)
