"""Where ONNX Runtime's CPU time goes, FP32 vs the `quantize --target cpu` INT8 model, by op type (ORT profiler).

    python benchmarks/ort_profile.py [MODEL.onnx] [--runs 30] [--threads N] [--out results/ort_profile_X.json]

Default model: the bundled one; its INT8 form is `fume-edge bench`'s cached CPU quantization.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fume_edge.assets import default_model_path
from fume_edge.bench.backends import onnx_preprocessing
from fume_edge.bench.int8 import cpu_int8_model
from fume_edge.bench.machine import machine_info
from fume_edge.bench.profile import compare_profiles, profile_ops

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, help="FP32 ONNX [default: the bundled model]")
    parser.add_argument("--int8", type=Path, help="INT8 ONNX to compare [default: bench's CPU quantization]")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", type=Path, default=RESULTS / "ort_profile.json")
    args = parser.parse_args()
    fp32_path = args.model or default_model_path()
    int8_path = args.int8 or cpu_int8_model(fp32_path, onnx_preprocessing(fp32_path))[0]
    fp32 = profile_ops(fp32_path, args.runs, threads=args.threads)
    int8 = profile_ops(int8_path, args.runs, threads=args.threads)
    rows = compare_profiles(fp32, int8, top=16)
    print(
        f"kernel time per inference: FP32 {fp32['kernel_us_per_run'] / 1000:.2f} ms, "
        f"INT8 {int8['kernel_us_per_run'] / 1000:.2f} ms"
    )
    print(f"{'op type':34s} {'FP32 µs':>9s} {'INT8 µs':>9s}  nodes fp32/int8")
    for row in rows:
        print(f"{row['op']:34s} {row['fp32_us']:9.0f} {row['int8_us']:9.0f}  {row['fp32_nodes']}/{row['int8_nodes']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"benchmark": "ORT profile by op type", "machine": machine_info(), "fp32": fp32, "int8": int8, "top": rows},
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
