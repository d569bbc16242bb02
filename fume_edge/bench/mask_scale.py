"""What `export --mask-scale N` buys and costs: model-only FPS and gas IoU / gas-area error against N = 1.

`rescale_masks` gives an existing ONNX export the graph `export --mask-scale N` makes from its checkpoint: the
seg heads' final Resize targets (H/N, W/N) instead of (H, W), so ArgMax runs on 1/N² of the pixels (a test holds
the two to the same outputs). That lets the study run on the bundled model, which ships without its checkpoint.
Accuracy is scored on synthetic pairs the model was not trained on (other scene seeds), with the labels scaled
back to full size by nearest neighbour, as snapshots and the live view draw them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fume_edge.bench.backends import onnx_runner
from fume_edge.bench.model import latency_stats, measure
from fume_edge.bench.profile import profile_ops
from fume_edge.labels import GAS_CLASS_ID, GASES
from fume_edge.metrics import labels_at
from fume_edge.runtime.contract import SEG_OUTPUTS


# ORT op types of the seg output path (the heads' final upsample, its layout reorder, ArgMax, the int32 Cast); the
# pyramid-pooling Resizes at 1/32 are in "Resize" too but cost little.
OUTPUT_PATH_OPS = ("Resize", "Upsample", "ReorderOutput", "ArgMax", "Cast")


def rescale_masks(model: Any, scale: int) -> Any:
    """A copy of a fume-edge ONNX graph (`onnx.ModelProto`) whose `co2_seg`/`ch4_seg` are at 1/scale."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    for output in graph.output:
        if output.name not in SEG_OUTPUTS.values():
            continue
        node = producer[output.name]
        while node.op_type != "Resize":  # Cast ← ArgMax ← Resize
            node = producer[node.input[0]]
        sizes = {i.name: i for i in graph.initializer}[node.input[3]]
        full = numpy_helper.to_array(sizes).copy()
        name = f"{node.name}/mask_scale_{scale}_sizes"
        if name not in {i.name for i in graph.initializer}:
            graph.initializer.append(
                numpy_helper.from_array(np.array([*full[:2], full[2] // scale, full[3] // scale], np.int64), name)
            )
        node.input[3] = name
        dims = output.type.tensor_type.shape.dim
        dims[-2].dim_value, dims[-1].dim_value = int(full[2] // scale), int(full[3] // scale)
    used = {name for node in graph.node for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.value_info[:]
    model.metadata_props.append(onnx.StringStringEntryProto(key="fume_edge.mask_scale", value=str(scale)))
    return onnx.shape_inference.infer_shapes(model)


def gas_iou(a: np.ndarray, b: np.ndarray) -> float:
    ga, gb = a == GAS_CLASS_ID, b == GAS_CLASS_ID
    union = np.count_nonzero(ga | gb)
    return 1.0 if union == 0 else np.count_nonzero(ga & gb) / union


def held_out_pairs(size: tuple[int, int], count: int) -> list[tuple[Any, ...]]:
    """(co2 frame, ch4 frame, co2 mask, ch4 mask) from scene seeds the bundled model never saw, pH across classes."""
    from fume_edge.data.synthetic import SyntheticScene

    pairs = []
    for i in range(count):
        scene = SyntheticScene(1000 + i, *size)
        pairs.append(tuple(scene.render_pair(ph=float(5.3 + 1.4 * i / max(count - 1, 1)), t=0.37 * i)))
    return pairs


def score(
    path: Path, pairs: list[tuple[Any, ...]], reference: list[dict[str, np.ndarray]] | None
) -> tuple[dict[str, float], list[dict[str, np.ndarray]]]:
    """Gas IoU against the ground truth and against `reference` (the N = 1 labels), and gas-area error."""
    from fume_edge.pipeline.prepare import ModelInputs
    from fume_edge.runtime.onnx_backend import OnnxBackend

    labels: list[dict[str, np.ndarray]] = []
    truth_iou, ref_iou, area_err = [], [], []
    with OnnxBackend(path, device="cpu") as backend:
        inputs = ModelInputs(GASES, dict.fromkeys(GASES, backend.contract.preprocessing))
        for index, (co2, ch4, co2_mask, ch4_mask) in enumerate(pairs):
            prediction = backend.infer(*inputs.prepare((co2, ch4)))
            masks = {"co2": co2_mask, "ch4": ch4_mask}
            out = {}
            for gas, seg in prediction.seg.items():
                out[gas] = labels_at(seg, masks[gas].shape)
                truth_iou.append(gas_iou(out[gas], masks[gas]))
                if reference is not None:
                    ref = reference[index][gas]
                    ref_iou.append(gas_iou(out[gas], ref))
                    area_err.append(abs(np.mean(seg == GAS_CLASS_ID) - np.mean(ref == GAS_CLASS_ID)))
            labels.append(out)
    result = {"gas_iou_vs_truth": round(float(np.mean(truth_iou)), 4)}
    if reference is not None:
        result |= {
            "gas_iou_vs_scale1": round(float(np.mean(ref_iou)), 4),
            "gas_area_abs_error_mean": round(float(np.mean(area_err)), 6),
            "gas_area_abs_error_max": round(float(np.max(area_err)), 6),
        }
    return result, labels


def mask_scale_study(
    onnx_path: Path,
    scales: tuple[int, ...] = (1, 2, 4),
    iterations: int = 60,
    warmup: int = 5,
    threads: int | None = None,
    pairs: int = 24,
    int8: bool = True,
) -> dict[str, Any]:
    """FPS (model-only, ORT CPU, every variant in alternating blocks) and accuracy of each mask scale against N = 1;
    with `int8`, each scale's CPU INT8 quantization (`bench/int8.py`) is timed in the same run. ORT's profiler
    adds each variant's kernel time and the part of it in the output path, which machine load disturbs less."""
    import onnx

    from fume_edge.bench.backends import onnx_preprocessing
    from fume_edge.bench.int8 import cpu_int8_model

    source = onnx.load(str(onnx_path))
    size = tuple(int(d.dim_value) for d in source.graph.input[0].type.tensor_type.shape.dim[-1:-3:-1])
    with tempfile.TemporaryDirectory(prefix="fume-edge-mask-scale-") as tmp:
        paths = {}
        for scale in scales:
            paths[scale] = onnx_path if scale == 1 else Path(tmp) / f"scale{scale}.onnx"
            if scale != 1:
                onnx.save(rescale_masks(source, scale), paths[scale])
        runners = [onnx_runner(f"fp32 mask-scale {s}", "fp32", paths[s], "cpu", threads, "") for s in scales]
        if int8:
            runners += [
                onnx_runner(
                    f"int8 mask-scale {s}",
                    "int8",
                    cpu_int8_model(paths[s], onnx_preprocessing(paths[s]))[0],
                    "cpu",
                    threads,
                    "",
                )
                for s in scales
            ]
        try:
            samples = measure(runners, iterations, warmup)
        finally:
            for runner in runners:
                runner.close()
        kernels = {
            runner.name: profile_ops(runner.model_file, runs=10, threads=threads)  # type: ignore[arg-type]
            for runner in runners
        }
        data = held_out_pairs(size, pairs)  # type: ignore[arg-type]
        base, reference = score(paths[1], data, None)
        rows = []
        for scale in scales:
            accuracy = base if scale == 1 else score(paths[scale], data, reference)[0]
            row: dict[str, Any] = {"mask_scale": scale, **accuracy}
            for precision in ("fp32", "int8") if int8 else ("fp32",):
                name = f"{precision} mask-scale {scale}"
                ops = kernels[name]["ops"]
                row[precision] = {
                    **latency_stats(samples[name].model_ms),
                    "kernel_ms": round(kernels[name]["kernel_us_per_run"] / 1000, 2),
                    "output_path_kernel_ms": round(
                        sum(ops.get(op, {}).get("us_per_run", 0.0) for op in OUTPUT_PATH_OPS) / 1000, 2
                    ),
                }
            rows.append(row)
    for row in rows:
        for precision in ("fp32", "int8") if int8 else ("fp32",):
            row[precision]["fps_vs_fp32_scale1"] = round(row[precision]["fps"] / rows[0]["fp32"]["fps"], 3)
    return {"model": str(onnx_path), "input_size": list(size), "test_pairs": pairs, "rows": rows}
