"""CUDA memory for the TensorRT backend: one stream, pinned host buffers, device buffers, async copies, graphs.

Through cuda-python (`cuda.bindings.runtime`, or `cuda.cudart` in cuda-python < 12.6), which installs as a wheel
on JetPack 6 (CUDA 12) and 7 (CUDA 13) alike; where a device has pycuda instead, `open_stream` uses it
(cuda_pycuda.py: the same interface). Every CUDA call returns an error code first; a failure becomes one FumeEdgeError.
`cudaErrorInsufficientDriver` / `cudaErrorNoDevice` from `cudaGetDeviceCount` is the clean "no GPU here" signal,
unless the driver is there and only older than cuda-python's CUDA major (cuda_compat.py says which to install).
The stream is non-blocking (no implicit sync with the legacy default stream), and waiting for a frame blocks on an
event made with `cudaEventBlockingSync`, so the CPU sleeps instead of spinning a core that capture, the web page and
MQTT need.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.cuda_compat import bindings_major, cuda_python_advice

if TYPE_CHECKING:
    from fume_edge.runtime.cuda_pycuda import PycudaStream

NO_GPU_HINT = (
    "run on a machine with an NVIDIA GPU and its driver (on a Jetson: JetPack), or use the .onnx model "
    "with ONNX Runtime on the CPU"
)


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    compute_capability: str  # "8.7"
    cuda_runtime: str  # "12.6"
    sm_count: int | None = None  # streaming multiprocessors: Orin Nano 8 GB has 8, AGX Orin 64 GB 16


def _find_cudart() -> ModuleType | None:
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _has_pycuda() -> bool:
    return importlib.util.find_spec("pycuda") is not None


def _cudart() -> ModuleType:
    cudart = _find_cudart()
    if cudart is not None:
        return cudart
    raise FumeEdgeError(
        "cuda-python is not installed (TensorRT needs it for device memory here); install the one of "
        "the driver's CUDA major: pip install 'fume-edge[trt-cu12]' on JetPack 6 (CUDA 12), "
        "'fume-edge[trt-cu13]' on JetPack 7 (CUDA 13)"
    )


def _call(cudart: ModuleType, what: str, result: Any) -> Any:
    """Unpack a cuda-python result tuple `(err, *values)`; a nonzero error is one line naming the call."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        _, text = cudart.cudaGetErrorString(err)
        raise FumeEdgeError(
            f"CUDA {what} failed: {text.decode() if isinstance(text, bytes) else text} (error {int(err)})"
        )
    return values[0] if len(values) == 1 else tuple(values)


def device_info(index: int = 0) -> DeviceInfo:
    """The GPU this process will use, or one line saying there is none and what to do."""
    if _find_cudart() is None and _has_pycuda():
        from fume_edge.runtime.cuda_pycuda import pycuda_device

        return DeviceInfo(index, *pycuda_device(index))
    cudart = _cudart()
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count == 0:
        reason = cudart.cudaGetErrorString(err)[1] if int(err) != 0 else b"no CUDA device"
        reason = reason.decode() if isinstance(reason, bytes) else str(reason)
        raise FumeEdgeError(no_gpu_message(cudart, reason, int(err)))
    if index >= count:
        raise FumeEdgeError(f"CUDA device {index}: only {count} GPU(s) visible; pick a device below {count}")
    props = _call(cudart, "cudaGetDeviceProperties", cudart.cudaGetDeviceProperties(index))
    version = int(_call(cudart, "cudaRuntimeGetVersion", cudart.cudaRuntimeGetVersion()))
    name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
    return DeviceInfo(
        index,
        name,
        f"{props.major}.{props.minor}",
        f"{version // 1000}.{version % 1000 // 10}",
        int(props.multiProcessorCount),
    )


INSUFFICIENT_DRIVER = 35  # cudaErrorInsufficientDriver


def no_gpu_message(cudart: ModuleType, reason: str, error: int) -> str:
    """Why CUDA sees no GPU, in one line: no driver at all, or a driver older than cuda-python's CUDA major (error 35
    for both), or another CUDA error; with what to do."""
    if error == INSUFFICIENT_DRIVER:
        status, driver = cudart.cudaDriverGetVersion()
        advice = cuda_python_advice(int(driver or 0) if int(status) == 0 else 0, bindings_major())
        if advice:
            return f"CUDA error 35 ({reason}): {advice}"
        if not driver:
            return f"no CUDA GPU visible (no NVIDIA driver found, CUDA error 35); {NO_GPU_HINT}"
    return f"no CUDA GPU visible ({reason}, CUDA error {error}); {NO_GPU_HINT}"


def stream_handle(stream: Any) -> int:
    """The raw `cudaStream_t` address TensorRT's `execute_async_v3` takes: `get_cuda_native_handle` (cuda-python
    ≥ 12.9 and 13, where `int()` on binding objects is on its way out), else `int()` (older 12.x)."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int(stream)
    return int(get_cuda_native_handle(stream))


class CaptureFailed(Exception):
    """The enqueue failed while a CUDA graph was being captured; the capture was ended and the error cleared."""


class CudaStream:
    """One stream and the memory one engine needs; allocations happen once, at load, never per frame."""

    def __init__(self, device: int = 0) -> None:
        self.cudart = _cudart()
        self.device = device_info(device)
        self._call("cudaSetDevice", self.cudart.cudaSetDevice(device))
        self.stream = self._call(
            "cudaStreamCreateWithFlags", self.cudart.cudaStreamCreateWithFlags(self.cudart.cudaStreamNonBlocking)
        )
        flags = self.cudart.cudaEventBlockingSync | self.cudart.cudaEventDisableTiming
        self.done = self._call("cudaEventCreateWithFlags", self.cudart.cudaEventCreateWithFlags(flags))
        self._host: list[int] = []
        self._device: list[int] = []
        self._graph_exec: Any = None
        self._graph: Any = None

    def _call(self, what: str, result: Any) -> Any:
        return _call(self.cudart, what, result)

    @property
    def handle(self) -> int:
        return stream_handle(self.stream)

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        """A page-locked host array (async copies need it); freed with the stream."""
        nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
        pointer = int(self._call("cudaMallocHost", self.cudart.cudaMallocHost(nbytes)))
        self._host.append(pointer)
        raw = (ctypes.c_byte * nbytes).from_address(pointer)
        return np.ctypeslib.as_array(raw).view(dtype)[: int(np.prod(shape))].reshape(shape)

    def device_buffer(self, nbytes: int) -> int:
        pointer = int(self._call("cudaMalloc", self.cudart.cudaMalloc(max(nbytes, 1))))
        self._device.append(pointer)
        return pointer

    def to_device(self, pointer: int, host: np.ndarray) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(
            "cudaMemcpyAsync", self.cudart.cudaMemcpyAsync(pointer, host.ctypes.data, host.nbytes, kind, self.stream)
        )

    def to_host(self, host: np.ndarray, pointer: int) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(
            "cudaMemcpyAsync", self.cudart.cudaMemcpyAsync(host.ctypes.data, pointer, host.nbytes, kind, self.stream)
        )

    def synchronize(self) -> None:
        """Wait for the stream's work, sleeping on a blocking-sync event (cudaStreamSynchronize would spin)."""
        self._call("cudaEventRecord", self.cudart.cudaEventRecord(self.done, self.stream))
        self._call("cudaEventSynchronize", self.cudart.cudaEventSynchronize(self.done))

    def capture(self, enqueue: Any) -> None:
        """Record what `enqueue()` puts on the stream as a CUDA graph, replayed by `replay()`. When the enqueue fails
        during capture (some layers cannot be captured), the capture is ended, its partial graph destroyed and the
        sticky error cleared, then `CaptureFailed` says why: the caller runs without a graph, as trtexec does."""
        mode = self.cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._call("cudaStreamBeginCapture", self.cudart.cudaStreamBeginCapture(self.stream, mode))
        try:
            enqueue()
        except Exception as exc:
            err, graph = self.cudart.cudaStreamEndCapture(self.stream)
            if int(err) == 0 and graph is not None:
                self.cudart.cudaGraphDestroy(graph)
            self.cudart.cudaGetLastError()  # clears the capture's error so plain enqueues work again
            raise CaptureFailed(str(exc)) from None
        self._graph = self._call("cudaStreamEndCapture", self.cudart.cudaStreamEndCapture(self.stream))
        self._graph_exec = self._call("cudaGraphInstantiate", self.cudart.cudaGraphInstantiate(self._graph, 0))

    def replay(self) -> None:
        self._call("cudaGraphLaunch", self.cudart.cudaGraphLaunch(self._graph_exec, self.stream))

    def close(self) -> None:
        """Free everything (idempotent): graph, buffers, stream."""
        if self._graph_exec is not None:
            self.cudart.cudaGraphExecDestroy(self._graph_exec)
            self.cudart.cudaGraphDestroy(self._graph)
            self._graph_exec = self._graph = None
        for pointer in self._device:
            self.cudart.cudaFree(pointer)
        for pointer in self._host:
            self.cudart.cudaFreeHost(pointer)
        self._device, self._host = [], []
        if self.stream is not None:
            self.cudart.cudaEventDestroy(self.done)
            self.cudart.cudaStreamDestroy(self.stream)
            self.stream = None


def open_stream(device: int = 0) -> CudaStream | PycudaStream:
    """A stream with its buffers through cuda-python, or pycuda where that is what the device has."""
    if _find_cudart() is None and _has_pycuda():
        from fume_edge.runtime.cuda_pycuda import PycudaStream

        return PycudaStream(device)
    return CudaStream(device)
