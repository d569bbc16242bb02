"""`export --mask-scale N` on the bundled model: model-only FPS (FP32 and CPU INT8) and gas IoU / gas-area error.

    python benchmarks/mask_scale.py [MODEL.onnx] [--scales 1,2,4] [--iterations 60] [--pairs 24] [--threads N]

Every variant is timed in one run, in alternating blocks (`fume_edge.bench.model.measure`); accuracy is scored on
synthetic pairs from scene seeds the model was not trained on. Writes benchmarks/results/mask_scale.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fume_edge.assets import default_model_path
from fume_edge.bench.machine import busy_cpu_seconds, machine_info
from fume_edge.bench.mask_scale import mask_scale_study

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, help="FP32 ONNX export [default: the bundled model]")
    parser.add_argument("--scales", default="1,2,4")
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--out", type=Path, default=RESULTS / "mask_scale.json")
    args = parser.parse_args()
    import time

    wall, busy = time.perf_counter(), busy_cpu_seconds()
    own = time.process_time()
    study = mask_scale_study(
        args.model or default_model_path(),
        tuple(int(s) for s in args.scales.split(",")),
        args.iterations,
        threads=args.threads,
        pairs=args.pairs,
    )
    wall = time.perf_counter() - wall
    others = round(max(0.0, (busy_cpu_seconds() or 0) - (busy or 0) - (time.process_time() - own)) / wall, 2)
    for row in study["rows"]:
        int8 = row.get("int8", {})
        print(
            f"N={row['mask_scale']}: FP32 {row['fp32']['fps']:.1f} FPS (x{row['fp32']['fps_vs_fp32_scale1']:.2f}, "
            f"kernels {row['fp32']['kernel_ms']:.1f} ms, output path {row['fp32']['output_path_kernel_ms']:.1f} ms), "
            f"INT8 {int8.get('fps', float('nan')):.1f} FPS (x{int8.get('fps_vs_fp32_scale1', float('nan')):.2f}, "
            f"kernels {int8.get('kernel_ms', float('nan')):.1f} ms, output path "
            f"{int8.get('output_path_kernel_ms', float('nan')):.1f} ms); "
            f"gas IoU vs truth {row['gas_iou_vs_truth']:.4f}"
            + (
                f", vs N=1 {row['gas_iou_vs_scale1']:.4f}, |gas area - N=1| mean {row['gas_area_abs_error_mean']:.5f}"
                f" max {row['gas_area_abs_error_max']:.5f}"
                if "gas_iou_vs_scale1" in row
                else ""
            )
        )
    print(f"other processes kept {others:.2f} cores busy while this ran")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "mask-scale study",
                "command": " ".join(["python", *sys.argv]),
                "machine": machine_info(),
                "other_processes_cores_busy": others,
                **study,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
