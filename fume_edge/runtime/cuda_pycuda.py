"""The same stream-and-buffers interface as cuda_mem.CudaStream, through pycuda, for a device that has pycuda but
not cuda-python (pycuda builds against the local CUDA toolkit, so older JetPack images often carry it).

pycuda raises its own exceptions instead of returning error codes; they become one FumeEdgeError here. CUDA-graph
replay is offered through cuda-python only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fume_edge.errors import FumeEdgeError

NON_BLOCKING = 1  # CU_STREAM_NON_BLOCKING: no implicit synchronisation with the legacy default stream


def _driver() -> Any:
    import pycuda.driver as driver

    try:
        driver.init()
    except driver.Error as exc:
        from fume_edge.runtime.cuda_mem import NO_GPU_HINT

        raise FumeEdgeError(f"no CUDA GPU visible (pycuda: {exc}); {NO_GPU_HINT}") from None
    return driver


def pycuda_device(index: int) -> tuple[str, str, str]:
    """(name, compute capability, CUDA version) of GPU `index`."""
    driver = _driver()
    count = driver.Device.count()
    if index >= count:
        raise FumeEdgeError(f"CUDA device {index}: {count} GPU(s) visible; pick a device below {count}")
    device = driver.Device(index)
    major, minor = device.compute_capability()
    version = driver.get_driver_version()  # e.g. 12020
    return device.name(), f"{major}.{minor}", f"{version // 1000}.{version % 1000 // 10}"


class PycudaStream:
    """One stream, pinned host arrays and device buffers in the GPU's primary context (pushed while open)."""

    def __init__(self, device: int = 0) -> None:
        self.driver = _driver()
        self.context = self.driver.Device(device).retain_primary_context()
        self.context.push()
        self.stream = self.driver.Stream(flags=NON_BLOCKING)
        flags = self.driver.event_flags
        self.done = self.driver.Event(flags.BLOCKING_SYNC | flags.DISABLE_TIMING)
        self._device: list[Any] = []

    @property
    def handle(self) -> int:
        return int(self.stream.handle)

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        return self.driver.pagelocked_empty(shape, dtype)  # type: ignore[no-any-return]  # pycuda is untyped

    def device_buffer(self, nbytes: int) -> int:
        allocation = self.driver.mem_alloc(max(nbytes, 1))
        self._device.append(allocation)
        return int(allocation)

    def to_device(self, pointer: int, host: np.ndarray) -> None:
        self.driver.memcpy_htod_async(pointer, host, self.stream)

    def to_host(self, host: np.ndarray, pointer: int) -> None:
        self.driver.memcpy_dtoh_async(host, pointer, self.stream)

    def synchronize(self) -> None:
        """Sleep on a blocking-sync event until the stream's work is done (a stream sync would spin a core)."""
        self.done.record(self.stream)
        self.done.synchronize()

    def capture(self, enqueue: Callable[[], None]) -> None:
        raise FumeEdgeError("CUDA-graph replay needs cuda-python (pip install cuda-python); run without it")

    def replay(self) -> None:
        raise FumeEdgeError("CUDA-graph replay needs cuda-python")

    def close(self) -> None:
        if self.context is None:
            return
        for allocation in self._device:
            allocation.free()
        self._device = []
        self.context.pop()
        self.context = None
