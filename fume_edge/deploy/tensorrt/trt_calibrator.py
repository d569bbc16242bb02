"""TensorRT's own entropy calibrator (IInt8EntropyCalibrator2) fed from the cached calibration tensors.

The classic INT8 route JetPack 6 users know (TensorRT 8.6/10.x; deprecated in 10, removed in 11), kept so the two
INT8 routes can be compared on the device: it feeds exactly the pairs and modality cases the QDQ route calibrates
on (`quantize.CalibrationFeeds`), as many pairs per batch as the network's static batch (a `--batch N` export: N
pairs stacked; a symbolic batch: one), through one set of device buffers. TensorRT's calibration
cache is written beside the calibration set, keyed by the sha256 of the ONNX being built, the calibration manifest's
sha256 and the TensorRT version: TensorRT leaves recalibration to the application, and a cache from another network
or other data would silently give wrong scales; a rebuild of the same three skips the calibration pass.
This module imports tensorrt, so only the build imports it, and only for --calibrator entropy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import tensorrt as trt

from fume_edge.data.calibration import CalibrationSet
from fume_edge.deploy.int8.quantize import HOLDOUT, CalibrationFeeds
from fume_edge.deploy.tensorrt.trt_settings import calibration_cache_name
from fume_edge.runtime.contract import INPUT_NAMES, rows_per_call
from fume_edge.runtime.cuda_mem import CudaStream

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from fume_edge.runtime.cuda_pycuda import PycudaStream


class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
    """Hands TensorRT one batch of the network's size per `get_batch`, in device memory it owns."""

    def __init__(
        self,
        cset: CalibrationSet,
        stream: CudaStream | PycudaStream,
        onnx_sha256: str,
        network: trt.INetworkDefinition,
        modalities: str = "all",
    ) -> None:
        trt.IInt8EntropyCalibrator2.__init__(self)
        calib_indices, _ = cset.split(HOLDOUT)  # the held-back pairs judge accuracy, never calibrate
        self.rows = rows_per_call(int(network.get_input(0).shape[0]))  # -1: a dynamic batch, one pair a batch
        self.feeds = CalibrationFeeds(cset, calib_indices, modalities, rows=self.rows)
        self.stream = stream
        self.cache = cset.folder / calibration_cache_name(trt.__version__, onnx_sha256, cset.manifest_sha256)
        first = cset.item(0)
        self.host = {
            name: stream.pinned((self.rows, *getattr(first, name).shape[1:]), np.dtype(np.float32))
            for name in INPUT_NAMES
        }
        self.device = {name: stream.device_buffer(host.nbytes) for name, host in self.host.items()}

    def get_batch_size(self) -> int:
        return self.rows

    def get_batch(self, names: list[str]) -> list[int]:
        feed = self.feeds.get_next()
        if feed is None:
            return []  # no more batches
        for name in names:
            np.copyto(self.host[name], feed[name])
            self.stream.to_device(self.device[name], self.host[name])
        self.stream.synchronize()
        return [self.device[name] for name in names]

    # None: no cache yet, TensorRT calibrates (its documented contract).
    def read_calibration_cache(self) -> bytes | None:
        return self.cache.read_bytes() if self.cache.is_file() else None

    def write_calibration_cache(self, cache: Buffer) -> None:
        self.cache.write_bytes(bytes(cache))
