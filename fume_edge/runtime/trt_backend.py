"""TensorRT backend: runs a `.engine` plan built by `fume-edge build-engine`.

Before any byte of the plan is deserialised, its sidecar is read and compared (full TensorRT version, GPU compute
capability and SM count, L4T release): a foreign engine is one line with the rebuild command (with `force`, a logged
warning), never a crash inside TensorRT. It takes the full `tensorrt` module or a lean runtime (`trt_module.
LEAN_MODULES`, for --version-compatible engines). A DLA engine gets its DLA core from the sidecar before it is
deserialised. Inference uses the name-based API (TensorRT ≥ 8.5): pinned host buffers, device buffers and one
non-blocking stream made once at load; per frame three async uploads, `execute_async_v3`, async downloads of the
int32 masks and three pH logits (never full-resolution logits), one blocking-sync wait. An engine built from an
`export --batch N` model has the static batch N (`max_batch`, from the model contract the sidecar carries):
`infer_batch` runs up to N pairs in that one call, the rows it was not given computing leftovers that are never read
(the padding), and `infer` is one pair of such a call. An engine of an `export --batch N --dynamic-batch` model
(an optimization profile of 1 to N rows, tensorrt_build.py) has buffers for N rows; each call sets the input
shapes to the rows it has (`set_input_shape`, only when the count changes) and copies just those rows. With
`cuda_graph=True` the full-batch sequence is captured once and replayed (a dynamic engine's short calls are plain
enqueues: the graph holds N-row kernels); where capture fails, a warning and plain enqueues (as trtexec does).
`close()` releases the context, the engine and the runtime, in that order, before the stream and its memory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.base import Prediction, predictions_from_batch
from fume_edge.runtime.contract import INPUT_NAMES, ModelContract, TensorSpec
from fume_edge.runtime.cuda_mem import CaptureFailed, CudaStream, device_info, open_stream
from fume_edge.runtime.engine_sidecar import RunningOn, Sidecar, TensorInfo, compare_sidecar, read_sidecar
from fume_edge.runtime.trt_module import (
    LogSink,
    import_runtime_module,
    is_lean,
    l4t_release,
    make_logger,
    module_version,
    numpy_dtype_name,
    shape_of,
)

if TYPE_CHECKING:
    import tensorrt as trt

    from fume_edge.runtime.cuda_pycuda import PycudaStream

LOG = logging.getLogger("fume_edge.tensorrt")


def _device_index(device: str) -> int:
    """`auto`, `cuda`, `tensorrt` → GPU 0; `cuda:N` → N."""
    head, _, index = device.partition(":")
    if head not in ("auto", "cuda", "tensorrt", "gpu"):
        raise FumeEdgeError(f"device {device!r}: a TensorRT engine runs on a GPU; use auto, cuda or cuda:N")
    return int(index) if index.isdigit() else 0


def running_here(device: str = "auto") -> RunningOn:
    """This machine as a sidecar is compared with it: TensorRT module and version, GPU, L4T release."""
    module = import_runtime_module()
    gpu = device_info(_device_index(device))
    return RunningOn(module_version(module), gpu.compute_capability, is_lean(module), gpu.sm_count, l4t_release())


def engine_io(engine: trt.ICudaEngine, module: Any) -> tuple[TensorInfo, ...]:
    """The engine's I/O tensors by name, as the sidecar records them."""
    specs = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = "input" if engine.get_tensor_mode(name) == module.TensorIOMode.INPUT else "output"
        specs.append(
            TensorInfo(
                name, numpy_dtype_name(engine.get_tensor_dtype(name)), shape_of(engine.get_tensor_shape(name)), mode
            )
        )
    return tuple(specs)


def _read_plan(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) < 64:
        raise FumeEdgeError(
            f"{path}: {len(data)} bytes is not a TensorRT engine (truncated?); rebuild it with `fume-edge build-engine`"
        )
    return data


class TensorRTBackend:
    """A deserialised engine with its execution context, stream and buffers; a context manager."""

    name = "tensorrt"

    def __init__(
        self,
        path: str | Path,
        device: str = "auto",
        force: bool = False,
        cuda_graph: bool = False,
        verbose: bool = False,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FumeEdgeError(f"{self.path}: engine file not found; build one with `fume-edge build-engine`")
        self._stream: CudaStream | PycudaStream | None = None
        self._runtime: trt.Runtime | None = None
        self.engine: trt.ICudaEngine | None = None
        self.context: trt.IExecutionContext | None = None
        module = import_runtime_module()
        version, lean = module_version(module), is_lean(module)
        self.sidecar = self._checked_sidecar(version, lean, force)
        here = running_here(device)  # "no GPU" is one line, before TensorRT touches CUDA
        if self.sidecar is not None:
            compare_sidecar(self.sidecar, here, self.path, force=force)
        self._graph = False
        self._stream = open_stream(_device_index(device))  # selects the GPU before TensorRT touches it
        try:
            self._load(module, version, verbose)
            if cuda_graph:
                self._capture()
        except BaseException:
            self.close()
            raise

    def _load(self, module: Any, version: str, verbose: bool) -> None:
        """Deserialise the plan, check its I/O against the sidecar and the contract, bind the buffers."""
        self._sink = LogSink(verbose=verbose)
        self._logger = make_logger(module, self._sink)
        runtime: trt.Runtime = module.Runtime(self._logger)
        self._runtime = runtime
        if self.sidecar is not None and self.sidecar.version_compatible:
            runtime.engine_host_code_allowed = True  # the plan carries its own lean runtime
        dla_core = self.sidecar.build_flags.get("dla_core") if self.sidecar is not None else None
        if dla_core is not None:
            runtime.DLA_core = int(dla_core)  # must be set before deserialising a DLA engine
        engine = runtime.deserialize_cuda_engine(_read_plan(self.path))
        if engine is None:
            detail = self._sink.errors[-1] if self._sink.errors else "no reason given"
            raise FumeEdgeError(
                f"{self.path}: TensorRT {version} cannot load this engine ({detail[:200]}); "
                "it is corrupt or from another TensorRT/GPU: rebuild it with `fume-edge build-engine`"
            )
        self.engine = engine
        self.io = engine_io(engine, module)
        if self.sidecar is not None and set(self.sidecar.io) != set(self.io):
            raise FumeEdgeError(
                f"{self.path}: its sidecar describes another engine's inputs/outputs; rebuild it "
                "with `fume-edge build-engine`"
            )
        self._check_contract()
        self._bind_buffers()

    def _checked_sidecar(self, version: str, lean: bool, force: bool) -> Sidecar | None:
        try:
            sidecar = read_sidecar(self.path)
        except FumeEdgeError:
            if force:
                return None
            raise
        compare_sidecar(sidecar, RunningOn(version, None, lean), self.path, force=force)
        return sidecar

    def _check_contract(self) -> None:
        """The model contract from the ONNX metadata the sidecar carries, checked against the engine's real I/O."""
        self.contract = ModelContract.from_metadata(self.metadata, str(self.path))
        specs = {
            mode: [TensorSpec(t.name, t.dtype, t.shape) for t in self.io if t.mode == mode]
            for mode in ("input", "output")
        }
        self.contract.check_io(specs["input"], specs["output"])

    @property
    def input_size(self) -> tuple[int, int]:
        return self.contract.input_size

    @property
    def metadata(self) -> dict[str, str]:
        """The ONNX metadata_props the engine was built from (carried by the sidecar)."""
        return self.sidecar.metadata if self.sidecar is not None else {}

    @property
    def class_names(self) -> list[str]:
        return list(self.contract.class_names)

    @property
    def max_batch(self) -> int:
        """Pairs one call takes: the engine's static batch (the model contract's, `export --batch N`)."""
        return self.contract.batch

    def _bind_buffers(self) -> None:
        """Pinned host and device memory for every I/O tensor, made once; their addresses bound to the context."""
        stream = self._stream
        assert stream is not None and self.engine is not None
        context = self.engine.create_execution_context()
        if context is None:
            raise FumeEdgeError(f"{self.path}: TensorRT could not create an execution context (GPU memory full?)")
        self.context = context
        self._host: dict[str, np.ndarray] = {}
        self._device: dict[str, int] = {}
        self._rows = self.max_batch  # the input shapes set in the context (a dynamic engine: per call)
        self._set_rows(self._rows)
        for tensor in self.io:
            shape = (self.max_batch, *tensor.shape[1:]) if self.contract.dynamic_batch else tensor.shape
            host = stream.pinned(shape, np.dtype(tensor.dtype))
            host.fill(0)  # padding rows of a short batch start as zeros, never as uninitialised memory
            self._host[tensor.name] = host
            self._device[tensor.name] = stream.device_buffer(host.nbytes)
            if not context.set_tensor_address(tensor.name, self._device[tensor.name]):
                raise FumeEdgeError(f"{self.path}: TensorRT refused the buffer for {tensor.name!r}")

    def _set_rows(self, rows: int) -> None:
        """A dynamic engine's input shapes for a call of `rows` pairs (a static engine's are fixed)."""
        assert self.context is not None
        if not self.contract.dynamic_batch:
            return
        for tensor in self.io:
            if tensor.mode == "input" and not self.context.set_input_shape(tensor.name, (rows, *tensor.shape[1:])):
                raise FumeEdgeError(
                    f"{self.path}: TensorRT refused {rows} rows for {tensor.name!r} (its profile takes 1 to "
                    f"{self.max_batch}); rebuild it with `fume-edge build-engine`"
                )
        self._rows = rows

    def _enqueue(self) -> None:
        """Uploads, the engine, downloads of the rows the context's shapes hold: all async on the one stream."""
        assert self._stream is not None and self.context is not None
        rows = self._rows
        for tensor in self.io:
            if tensor.mode == "input":
                self._stream.to_device(self._device[tensor.name], self._host[tensor.name][:rows])
        if not self.context.execute_async_v3(self._stream.handle):
            raise FumeEdgeError(
                f"{self.path}: TensorRT could not enqueue the engine "
                f"({self._sink.errors[-1] if self._sink.errors else 'no reason given'})"
            )
        for tensor in self.io:
            if tensor.mode == "output":
                self._stream.to_host(self._host[tensor.name][:rows], self._device[tensor.name])

    def _capture(self) -> None:
        assert self._stream is not None
        self._enqueue()  # TensorRT does its lazy set-up on the first enqueue, which a graph must not contain
        self._stream.synchronize()
        try:
            self._stream.capture(self._enqueue)
        except CaptureFailed as exc:
            LOG.warning("%s: CUDA graph capture failed (%s); running without a graph", self.path, exc)
            return
        self._graph = True

    def infer(self, co2: np.ndarray, ch4: np.ndarray, modality_mask: np.ndarray) -> Prediction:
        """One pair (batch-1 arrays), in one call: of the engine's static batch, or of one row (dynamic)."""
        return self.infer_batch(co2, ch4, modality_mask)[0]

    def infer_batch(self, co2: np.ndarray, ch4: np.ndarray, modality_mask: np.ndarray) -> list[Prediction]:
        """Up to `max_batch` pairs (row i of each array) in one engine call; one Prediction per given row."""
        assert self._stream is not None, "backend is closed"
        rows = len(co2)
        if not 1 <= rows <= self.max_batch:
            raise FumeEdgeError(
                f"{self.path}: {rows} pairs in one call; this engine takes 1 to {self.max_batch} "
                "(its model's batch: re-export with `fume-edge export --batch N` and rebuild)"
            )
        for name, value in zip(INPUT_NAMES, (co2, ch4, modality_mask), strict=True):
            host = self._host[name]
            if len(value) != rows or value[0].size != host[0].size:
                raise FumeEdgeError(
                    f"{self.path}: input {name} has shape {value.shape}, the engine takes "
                    f"{rows} rows of {host.shape[1:]}"
                )
            np.copyto(host[:rows], value.reshape((rows, *host.shape[1:])), casting="same_kind")
        whole = rows == self.max_batch or not self.contract.dynamic_batch  # a static engine always runs all rows
        if self._graph and whole:
            self._stream.replay()  # the graph holds the kernels for max_batch rows
        else:
            if rows != self._rows:
                self._set_rows(rows)
            self._enqueue()
        self._stream.synchronize()
        outputs = {t.name: self._host[t.name][:rows].copy() for t in self.io if t.mode == "output"}
        return predictions_from_batch(outputs, self.contract)

    def close(self) -> None:
        """Context, engine, runtime, then the stream and its memory (idempotent): TensorRT objects hold GPU memory
        until released, which an 8 GB Orin running several engines in turn (bench) runs out of otherwise."""
        self.context = None
        self.engine = None
        self._runtime = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def __enter__(self) -> TensorRTBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
