"""`SwappableBackend`: a Backend that delegates to the model in use and can be handed a new one while the loop
runs. A swap waits for the call in flight and takes effect on the next, so the loop never sees half a model; the
model sha alert events carry is asked of it at each event. It also counts what the health watch after a swap
needs (calls, non-finite results, errors, call times), per model, reset at each swap."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.base import Backend, Prediction, batch_capacity, infer_rows
from fume_edge.runtime.contract import ModelContract


@dataclass(frozen=True)
class ModelHealth:
    """What the model in use did since it was swapped in (an immutable snapshot for other threads)."""

    version: str | None
    calls: int
    non_finite: int
    errors: int
    median_ms: float | None  # of the last calls

    @property
    def fps(self) -> float | None:
        return None if not self.median_ms else 1000.0 / self.median_ms


class _Active:
    def __init__(self, backend: Backend, model_sha: str | None, version: str | None) -> None:
        self.backend, self.model_sha, self.version = backend, model_sha, version
        self.calls = self.non_finite = self.errors = 0
        self.times_ms: deque[float] = deque(maxlen=200)


class SwappableBackend:
    """The loop's backend; `swap()` from another thread puts a new model in between two calls."""

    def __init__(self, backend: Backend, model_sha: str | None, version: str | None = None) -> None:
        self._lock = threading.Lock()
        self._active = _Active(backend, model_sha, version)

    @property
    def name(self) -> str:
        return self._active.backend.name

    @property
    def contract(self) -> ModelContract:
        return self._active.backend.contract

    @property
    def input_size(self) -> tuple[int, int]:
        return self._active.backend.input_size

    @property
    def backend(self) -> Backend:
        """The model in use now."""
        return self._active.backend

    @property
    def version(self) -> str | None:
        return self._active.version

    def model_sha(self) -> str | None:
        """The sha of the model in use now (AlertService takes this callable as its model_sha)."""
        return self._active.model_sha

    @property
    def max_batch(self) -> int | None:
        return batch_capacity(self._active.backend)

    def infer(self, co2: np.ndarray, ch4: np.ndarray, modality_mask: np.ndarray) -> Prediction:
        return self._counted(lambda backend: [backend.infer(co2, ch4, modality_mask)])[0]

    def infer_batch(self, co2: np.ndarray, ch4: np.ndarray, modality_mask: np.ndarray) -> list[Prediction]:
        """Every station's pair in one call (the loop's batch), counted as one call for the health watch."""
        return self._counted(lambda backend: infer_rows(backend, co2, ch4, modality_mask))

    def _counted(self, call: Callable[[Backend], list[Prediction]]) -> list[Prediction]:
        with self._lock:
            active = self._active
            start = time.perf_counter()
            try:
                predictions = call(active.backend)
            except Exception:
                active.errors += 1
                raise
            active.times_ms.append(1000 * (time.perf_counter() - start))
            active.calls += 1
            active.non_finite += sum(not p.finite for p in predictions)
            return predictions

    def health(self) -> ModelHealth:
        with self._lock:
            a = self._active
            times = sorted(a.times_ms)
            median = times[len(times) // 2] if times else None
            return ModelHealth(a.version, a.calls, a.non_finite, a.errors, median)

    def swap(self, backend: Backend, model_sha: str | None, version: str | None) -> Backend:
        """Use `backend` from the next call on; returns the one it replaces (still open: the caller closes it,
        or keeps it to swap back). A model that needs other inputs (size, preprocessing) needs a restart."""
        old = self._active.backend
        if (
            backend.input_size != old.input_size
            or backend.contract.preprocessing != old.contract.preprocessing
            or batch_capacity(backend) != batch_capacity(old)
        ):
            raise FumeEdgeError(
                f"model {version}: input {backend.input_size}, preprocessing or static batch "
                f"differs from the running model's {old.input_size}; restart `fume-edge run` to use it"
            )
        with self._lock:
            self._active = _Active(backend, model_sha, version)
        return old

    def close(self) -> None:
        self._active.backend.close()

    def __enter__(self) -> SwappableBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
