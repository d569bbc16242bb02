#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and TensorRT (a Jetson, or a desktop with NVIDIA's wheel): the `gpu` tests, then
# the TensorRT benchmark (FP16/INT8 build times, batch-1 FPS, parity with ONNX Runtime) into benchmarks/results/,
# then the FP16-vs-INT8 comparison (the INT8 engine from the restricted Q/DQ placement must not be slower) and process
# CPU per frame: ONNX Runtime camera-paced with intra-op spinning on and off, TensorRT (blocking-sync wait).
#   bash benchmarks/gpu_check.sh            (from the repository root, in the venv that sees TensorRT)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -c "import tensorrt, sys; print('TensorRT', tensorrt.__version__)" || {
  hint="$("$PY" -c 'from fume_edge.extras import tensorrt_install_hint as hint; print(hint())')"
  echo "TensorRT's Python module is missing: $hint" >&2
  exit 2
}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
"$PY" -m pytest -q -m gpu tests/test_trt_gpu.py tests/test_bundle.py -rs
# Batch engines: static batch 3, and the dynamic batch 1..3 (optimization profile 1/3/3, with and without a CUDA graph).
"$PY" -m pytest -q -m gpu tests/test_runtime_batch.py -rs
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PY" -m fume_edge synth "$work/syn" --pairs 96 --seed 31 >/dev/null
"$PY" -m fume_edge pair "$work/syn/annotations.csv" -o "$work/paired" >/dev/null
"$PY" -m fume_edge calibrate --data "$work/paired/paired_train.csv" -o "$work/calib" --count 64 >/dev/null
"$PY" benchmarks/trt_engines.py --calib "$work/calib"
# A short tick on TensorRT: pad to the static batch or run the dynamic engine's smaller shape (the research fixture).
"$PY" -m fume_edge import tests/fixtures/upstream_fume/upstream_fume_fastscnn_shared.pth -o "$work/upstream.pt" >/dev/null
"$PY" benchmarks/batch_pad.py "$work/upstream.pt" --batch 3 --tensorrt --iterations 100
# FP16 vs INT8 (Q/DQ on Conv/ConvTranspose/Gemm/MatMul and residual Adds only) and CPU per frame for every backend:
# bench prints the model-only table (CPU ms per call per row) and the ONNX Runtime spinning on/off line.
"$PY" -m fume_edge bench --backends onnxruntime,tensorrt-fp16,tensorrt-int8 --calib "$work/calib" --iterations 200 \
  --json "benchmarks/results/gpu_check_bench_$(date -u +%Y%m%dT%H%M%SZ).json"
