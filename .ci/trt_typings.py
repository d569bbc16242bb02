"""Make `typings/`: the TensorRT 10.13 API stubs (`tensorrt-stubs`) in a form mypy reads (DESIGN §8).

`tensorrt-stubs` is installed with `pip install --no-deps` (it depends on the `tensorrt` package, which downloads
from NVIDIA's index). Its stubs lack a py.typed marker and have two spots mypy cannot parse; this copies
`tensorrt/` and `tensorrt_bindings/` into `typings/` and fixes those two spots:
- `IPluginV3` methods have a parameter named `in` (a keyword): renamed `in_`;
- `add_scale_nd` has `channel_axis` without a default after defaulted parameters: it moves before them;
and drops the stub's import of `tensorrt_libs` (the shared libraries, which have no stubs).
Run: python .ci/trt_typings.py [TYPINGS_DIR [STUBS_DIR]] (STUBS_DIR: a `pip install --no-deps --target` folder, so
the stubs' empty `tensorrt/` package never shadows a real TensorRT in the venv); then `mypy` (pyproject settings).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

SCALE_ND = (
    "shift: Weights = None, scale: Weights = None, power: Weights = None, channel_axis: int)",
    "channel_axis: int, shift: Weights = None, scale: Weights = None, power: Weights = None)",
)


def patch_bindings(text: str) -> str:
    """The two spots mypy cannot parse: `in` parameters (IPluginV3 methods) and add_scale_nd's argument order."""
    if SCALE_ND[0] not in text or ", in: " not in text:
        raise SystemExit("tensorrt_bindings/tensorrt.pyi: the expected spots are not there (stubs changed?)")
    return text.replace(SCALE_ND[0], SCALE_ND[1]).replace(", in: ", ", in_: ")


def patch_package(text: str) -> str:
    """`tensorrt/__init__.pyi` imports `tensorrt_libs` (the shared libraries, no stubs): not part of the API."""
    return text.replace("import tensorrt_libs as tensorrt_libs\n", "")


def stub_package(name: str, source: Path | None) -> Path:
    """Where pip put the stub package `name` (a folder of .pyi files, not importable code)."""
    for entry in [str(source)] if source else sys.path:
        candidate = Path(entry) / name
        if (candidate / "__init__.pyi").is_file():
            return candidate
    raise SystemExit(f"{name}: stubs not found; install them with: pip install --no-deps tensorrt-stubs")


def main(out: Path, source: Path | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tensorrt", "tensorrt_bindings"):
        shutil.rmtree(out / name, ignore_errors=True)
        shutil.copytree(stub_package(name, source), out / name)
    for stub, patch in (
        (out / "tensorrt_bindings" / "tensorrt.pyi", patch_bindings),
        (out / "tensorrt" / "__init__.pyi", patch_package),
    ):
        stub.write_text(patch(stub.read_text()))
    print(f"TensorRT stubs for mypy in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "typings"), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
