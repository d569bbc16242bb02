"""`bench --estimate`: the roofline arithmetic checked by hand on a one-convolution graph, and the device table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fume_edge.bench.estimate import Device, efficiency, estimate, graph_costs, known_devices, load_devices, roofline
from fume_edge.errors import FumeEdgeError


def one_conv(path: Path) -> Path:
    """x (1,4,8,8) → Conv 3×3, 16 out, pad 1 → ReLU → y (1,16,8,8)."""
    weight = numpy_helper.from_array(np.ones((16, 4, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["y"], name="relu"),
        ],
        "one_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 8, 8])],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_one_conv_by_hand(tmp_path: Path) -> None:
    model = onnx.load(one_conv(tmp_path / "conv.onnx"))
    conv, relu = graph_costs(model)
    # FLOPs: 2 per MAC; 16·8·8 outputs, each 4·3·3 MACs.
    assert conv.flops == 2 * (16 * 8 * 8) * (4 * 3 * 3) == 73728
    # Bytes at FP16: input 4·8·8, weights 16·4·3·3, output 16·8·8 elements, 2 bytes each; INT8: 1 byte each.
    assert conv.bytes["fp16"] == 2 * (256 + 576 + 1024) == 3712
    assert conv.bytes["int8"] == 1856
    assert relu.flops == 1024 and relu.bytes["fp16"] == 0  # fused into the conv: no traffic of its own
    # A device with 1 TFLOPS FP16, 2 TOPS INT8, 1 GB/s: the conv is memory-bound (3712 B / 1e9 B/s = 3.712 µs
    # against 73.7 ns of compute); the ReLU costs 1024 / 1e12 s.
    device = Device("toy", "toy", int8_dense_tops=2.0, fp16_dense_tflops=1.0, bandwidth_gbs=1.0, source="test")
    fp16 = roofline([conv, relu], device, "fp16")
    assert fp16["bound_ms"] == pytest.approx(1000 * (3712 / 1e9 + 1024 / 1e12))
    assert fp16["bound_fps"] == pytest.approx(1 / (3712 / 1e9 + 1024 / 1e12))
    int8 = roofline([conv, relu], device, "int8")
    assert int8["bound_ms"] == pytest.approx(1000 * (1856 / 1e9 + 1024 / 1e12))  # ReLU at the FP16 rate
    # Compute-bound when bandwidth is plentiful: the conv at the INT8 tensor peak.
    fast = Device("fast", "fast", int8_dense_tops=2.0, fp16_dense_tflops=1.0, bandwidth_gbs=1e6, source="test")
    assert roofline([conv], fast, "int8")["bound_ms"] == pytest.approx(1000 * 73728 / 2e12)


def test_a_batch_reads_the_weights_once_and_counts_stations(tmp_path: Path) -> None:
    """Batch 3: three pairs of activations and FLOPs, one read of the weights; FPS counts pairs."""
    model = onnx.load(one_conv(tmp_path / "conv.onnx"))
    conv, _ = graph_costs(model, batch=3)
    assert conv.flops == 3 * 73728
    assert conv.bytes["fp16"] == 2 * (3 * 256 + 576 + 3 * 1024)
    one, three = (estimate(tmp_path / "conv.onnx", [known_devices()["orin-nano-8gb"]], batch) for batch in (1, 3))
    assert three["batch"] == 3 and three["gflops"] == one["gflops"]  # per pair
    for a, b in zip(one["rows"], three["rows"], strict=True):
        assert b["bound_fps"] > a["bound_fps"]  # the weights are shared by the three pairs
        assert b["stations_at_30fps"][1] == int(b["expected_fps"][1] // 30)


def test_expected_range_uses_the_cited_reference(tmp_path: Path) -> None:
    ref_eff = 8.7e9 / 4.4e-3 / 16.7e12  # YOLOv8n on Orin Nano Super, FP16
    assert efficiency("fp16") == pytest.approx(ref_eff)
    result = estimate(one_conv(tmp_path / "conv.onnx"), load_devices("orin-nano-8gb"))
    row = next(r for r in result["rows"] if r["precision"] == "fp16")
    low, high = row["expected_fps"]
    assert low <= high <= row["bound_fps"]
    assert low == pytest.approx(row["bound_fps"] * ref_eff, rel=0.01)


def test_device_table_is_dense_and_cited() -> None:
    devices = known_devices()
    assert set(devices) == {"orin-nano-8gb", "orin-nano-super", "orin-nx-16gb", "agx-orin-64gb", "xavier-nx"}
    assert devices["orin-nano-8gb"].int8_dense_tops == 20.0 and devices["orin-nano-8gb"].bandwidth_gbs == 68.0
    assert devices["agx-orin-64gb"].bandwidth_gbs == 204.8
    for device in devices.values():
        assert device.source and device.fp16_dense_tflops == pytest.approx(device.int8_dense_tops / 2, rel=0.01)


def test_device_yaml_and_errors(tmp_path: Path) -> None:
    custom = tmp_path / "board.yaml"
    custom.write_text("int8_dense_tops: 10\nfp16_dense_tflops: 5\nbandwidth_gbs: 50\n")
    (device,) = load_devices(str(custom))
    assert device.key == "board" and device.bandwidth_gbs == 50.0
    custom.write_text("int8_dense_tops: 10\n")
    with pytest.raises(
        FumeEdgeError,
        match=r"board.yaml: fp16_dense_tflops: missing; give it a value\n.*board.yaml: bandwidth_gbs: missing",
    ):
        load_devices(str(custom))
    with pytest.raises(FumeEdgeError, match="orin-nano-8gb"):
        load_devices("jetson-tx9")


def test_estimate_cli_on_the_bundled_model(tmp_path: Path) -> None:
    out = tmp_path / "estimate.json"
    done = subprocess.run(
        [sys.executable, "-m", "fume_edge", "bench", "--estimate", "all", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "COLUMNS": "160"},
    )
    assert done.returncode == 0, done.stderr
    assert "UPPER BOUND" in done.stdout and "not a measurement" in done.stdout
    assert "DESIGN" not in done.stdout and "docs.ultralytics.com/guides/nvidia-jetson" in done.stdout
    result = json.loads(out.read_text())
    assert len(result["rows"]) == 10 and 3.5 < result["gflops"] < 5.0
    for row in result["rows"]:
        assert row["expected_fps"][1] <= row["bound_fps"]
