#!/usr/bin/env bash
# Rebuild the bundled default model from nothing: synthetic data, two training stages, held-out test, export.
# Run it from this folder (fume_edge/assets/recipe); it writes data/ and runs/ here and the ONNX into ../.
set -euo pipefail
export OMP_WAIT_POLICY=PASSIVE  # small shared CPUs: spinning OpenMP threads stall the data loader
cd "$(dirname "$0")"
fume-edge synth data/synth --pairs 2000 --seed 7 --config data.yaml
fume-edge pair data/synth/annotations.csv -o data/paired --config data.yaml --seed 7
fume-edge train --config stage1_320.yaml
fume-edge train --config stage2_640.yaml
fume-edge export runs/stage2_640/best.pt -o ../fume_default.onnx --check-data data/paired/paired_val.csv
fume-edge eval ../fume_default.onnx --data data/paired/paired_test.csv --json runs/test_metrics.json
