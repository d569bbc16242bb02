"""The `onnxruntime-int8` row's model: the given FP32 ONNX quantized for the CPU target, made once and cached.

Speed does not depend on the calibration ranges, so without a calibration folder a small synthetic one is rendered
at the model's input size; the quantized model is cached under the user cache folder by the FP32 file's sha256
and the quantizer's settings, so a second `fume-edge bench` starts measuring at once. A model that already holds
QDQ nodes is used as it is. With `--stations N` the loop runs the batch-N export quantized the same way
(`batched_int8_model`), one call per tick for all stations.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from fume_edge.hashing import sha256_file
from fume_edge.runtime.pre import Preprocessing

if TYPE_CHECKING:
    from fume_edge.bench.backends import Models

SYNTHETIC_PAIRS = 24  # enough feeds for every range; speed is what the row measures


def cache_dir() -> Path:
    """$FUME_EDGE_CACHE, else $XDG_CACHE_HOME/fume-edge, else ~/.cache/fume-edge."""
    explicit = os.environ.get("FUME_EDGE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fume-edge"


def is_quantized(path: Path) -> bool:
    """Whether an ONNX file already holds QDQ (QuantizeLinear) nodes."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(node.op_type == "QuantizeLinear" for node in model.graph.node)


def synthetic_calibration(folder: Path, preprocessing: Preprocessing, pairs: int = SYNTHETIC_PAIRS) -> Path:
    """Render a small paired synthetic dataset and make a calibration set of it for a model's preprocessing."""
    from fume_edge.data.calibration import CalibrationRequest, build_calibration_set
    from fume_edge.data.config import load_data_config
    from fume_edge.data.pairing import run_pairing
    from fume_edge.data.synth_dataset import plan_sessions, write_synthetic_dataset

    config = load_data_config()
    plans = plan_sessions(config.synthetic, config.ph_classes, pairs, seed=0)
    annotations = write_synthetic_dataset(folder / "synth", plans, config.synthetic, seed=0)
    run_pairing(annotations, folder / "synth", config.pairing, config.ph_classes)
    build_calibration_set(
        CalibrationRequest(
            folder / "synth" / "paired_train.csv",
            folder / "calib",
            pairs,
            0,
            preprocessing.input_size,
            preprocessing.uint16_range,
        )
    )
    return folder / "calib"


def bench_calibration(preprocessing: Preprocessing, calibration: Path | None = None) -> Path:
    """The given calibration folder, else a synthetic one for the model's preprocessing, made once into the cache."""
    if calibration is not None:
        return calibration
    (width, height), (low, high) = preprocessing.input_size, preprocessing.uint16_range
    folder = cache_dir() / "bench" / f"calib-synthetic{SYNTHETIC_PAIRS}-{width}x{height}-{low:g}-{high:g}"
    if not (folder / "manifest.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="calib-", dir=folder.parent) as tmp:
            made = synthetic_calibration(Path(tmp), preprocessing)
            shutil.rmtree(folder, ignore_errors=True)
            made.replace(folder)
    return folder


def cpu_int8_model(fp32: Path, preprocessing: Preprocessing, calibration: Path | None = None) -> tuple[Path, str]:
    """(INT8 model path, how it was made): the given file if it is QDQ already, else the cached CPU quantization."""
    from fume_edge.deploy.int8.quantize import QuantizeOptions, quantize_onnx

    if is_quantized(fp32):
        return fp32, "given QDQ model"
    options = QuantizeOptions(target="cpu", force=True)
    calib_key = sha256_file(calibration / "manifest.json")[:12] if calibration else f"synthetic{SYNTHETIC_PAIRS}"
    key = f"{sha256_file(fp32)[:16]}-{options.target}-{options.method}-{calib_key}"
    cached = cache_dir() / "bench" / f"{key}.int8.onnx"
    source = f"`fume-edge quantize --target cpu` on {calibration or 'synthetic calibration pairs'}"
    if cached.is_file():
        return cached, f"{source} (cached {cached})"
    quantize_onnx(fp32, bench_calibration(preprocessing, calibration), cached, options)
    return cached, source


def batched_int8_model(measured: Path, batched_fp32: Path, models: Models) -> Path:
    """The INT8 model the loop runs for N stations: the batch-N export quantized as the row's model was (cached),
    so INT8 too makes one batched call per tick; the measured file when the user gave a QDQ model (no batch-N form
    of it can be made here)."""
    if models.onnx is not None and is_quantized(models.onnx):
        return measured
    from fume_edge.bench.backends import onnx_preprocessing

    return cpu_int8_model(batched_fp32, onnx_preprocessing(batched_fp32), models.int8_calibration)[0]
