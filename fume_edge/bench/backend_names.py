"""The backends `fume-edge bench` measures, by name: apart from their code so the CLI's option default costs no import
of numpy or a runtime."""

from __future__ import annotations

BACKENDS: tuple[str, ...] = ("torch", "onnxruntime", "onnxruntime-int8", "tensorrt-fp16", "tensorrt-int8")
DEFAULT_BACKENDS: tuple[str, ...] = BACKENDS  # what `bench` measures when --backends is not given
