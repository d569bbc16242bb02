"""What a TensorRT build does, per TensorRT version: one pure function, unit-tested for every version on the CPU.

- 8.6 (JetPack 6.0): explicit-batch network flag; precision by builder flags (FP16; INT8+FP16 for a QDQ model or
  the entropy calibrator); `builder_optimization_level` and `VERSION_COMPATIBLE` exist from 8.6 on.
- 10.x (JetPack 6.1/6.2: 10.3; JetPack 7.2: 10.16; desktops): networks are explicit-batch by default (the flag is
  deprecated), precision flags as in 8.6; calibrators are deprecated (still run).
- 11.x (desktops): strongly typed only, no precision flags, no calibrators: FP16 comes from an FP16 ONNX (float32
  I/O), INT8 from the QDQ ONNX. DLA: NVIDIA's 11.x notes list it for AGX Orin (JetPack 7.2.2 on); the build finds
  out whether this device has DLA cores (tensorrt_build.py) and says so in one line where it has none.
- DLA on 8.6 does not run explicit quantization (Q/DQ layers): an INT8 DLA engine there needs the entropy calibrator.
- A dynamic-batch model (`export --batch N --dynamic-batch`), every version: one optimization profile, each input
  from 1 row (min) to N rows (opt and max: the full tick is what is tuned). DLA takes no dynamic shapes and the
  entropy calibrator reads a static input shape: both are refused for it in one line. INT8 by QDQ (`quantize` of
  the dynamic export calibrates one pair a row) needs no calibrator and takes the profile like any model.
The names returned are TensorRT enum member names; tensorrt_build.py applies them with getattr on the real module.
"""

from __future__ import annotations

from dataclasses import dataclass

from fume_edge.errors import FumeEdgeError
from fume_edge.runtime.contract import DYNAMIC, ModelContract

PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATORS = ("qdq", "entropy")
MIN_VERSION = (8, 6)


@dataclass(frozen=True)
class EngineBuildOptions:
    precision: str = "fp16"  # fp32, fp16 or int8
    calibrator: str = "qdq"  # int8: "qdq" (explicit quantization, every version) or "entropy" (8.6/10.x)
    workspace_gb: float = 2.0  # builder scratch memory; Orin Nano shares 8 GB with the CPU
    opt_level: int = 3  # builder_optimization_level 0-5 (TensorRT's default is 3)
    dla_core: int | None = None  # build for this DLA core, layers it cannot run fall back to the GPU
    version_compatible: bool = False  # runs on later TensorRT (and the lean runtime)

    @property
    def label(self) -> str:
        """fp32, fp16, int8 or int8-entropy: what engine file names and sidecars call this build."""
        return f"int8-{self.calibrator}".replace("-qdq", "") if self.precision == "int8" else self.precision

    def validate(self) -> None:
        if self.precision not in PRECISIONS:
            raise FumeEdgeError(f"precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.calibrator not in CALIBRATORS:
            raise FumeEdgeError(f"--calibrator {self.calibrator!r}: choose qdq or entropy")
        if self.calibrator == "entropy" and self.precision != "int8":
            raise FumeEdgeError("--calibrator entropy: only with --int8")
        if not 0 <= self.opt_level <= 5:
            raise FumeEdgeError(f"--opt-level {self.opt_level}: TensorRT takes 0 to 5")
        if self.workspace_gb <= 0:
            raise FumeEdgeError(f"--workspace-gb {self.workspace_gb}: must be positive")
        if self.dla_core is not None and self.dla_core < 0:
            raise FumeEdgeError(f"--dla-core {self.dla_core}: DLA cores are numbered from 0")


@dataclass(frozen=True)
class InputProfile:
    """One input's shapes in an optimization profile (IOptimizationProfile.set_shape)."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass(frozen=True)
class BuildPlan:
    """Everything version-specific about one build."""

    network_flags: tuple[str, ...]  # NetworkDefinitionCreationFlag members
    builder_flags: tuple[str, ...]  # BuilderFlag members
    onnx_form: str  # which ONNX the parser reads: "float", "fp16" (11.x FP16) or "qdq" (INT8)
    entropy_calibrator: bool
    workspace_bytes: int
    optimization_level: int
    dla_core: int | None
    sidecar_precision: str  # fp32, fp16, int8-qdq, int8-entropy
    profile: tuple[InputProfile, ...] = ()  # a dynamic-batch model's optimization profile (none: static shapes)


def parse_version(text: str) -> tuple[int, int]:
    parts = text.split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise FumeEdgeError(f"TensorRT version {text!r}: expected MAJOR.MINOR, e.g. 10.3") from None


def batch_profile(contract: ModelContract) -> tuple[InputProfile, ...]:
    """Every input of a dynamic-batch model from 1 row to its batch N, tuned at N."""
    profiles = []
    for spec in contract.expected_inputs():
        if spec.shape[0] == DYNAMIC:
            rest = tuple(int(d) for d in spec.shape[1:])
            n = contract.batch
            profiles.append(InputProfile(spec.name, (1, *rest), (n, *rest), (n, *rest)))
    return tuple(profiles)


def build_plan(version: str, options: EngineBuildOptions, contract: ModelContract | None = None) -> BuildPlan:
    """The network flags, builder flags and config settings for TensorRT `version` and `options`, and the
    optimization profile the model's `contract` needs (a dynamic batch)."""
    options.validate()
    major_minor = parse_version(version)
    if major_minor < MIN_VERSION:
        raise FumeEdgeError(
            f"TensorRT {version}: fume-edge needs TensorRT 8.6 or newer (JetPack 6); "
            "upgrade JetPack (JetPack 5 ships 8.5 and Python 3.8)"
        )
    major = major_minor[0]
    strongly_typed = major >= 11
    if options.calibrator == "entropy" and strongly_typed:
        raise FumeEdgeError(
            f"--calibrator entropy: TensorRT {version} has no calibrators (removed in 11); "
            "use the default QDQ route (--calibrator qdq)"
        )
    if options.dla_core is not None:
        if major_minor[0] == 8 and options.precision == "int8" and options.calibrator == "qdq":
            raise FumeEdgeError(
                f"--dla-core with --int8: TensorRT {version}'s DLA does not run explicit quantization "
                "(Q/DQ); add --calibrator entropy (implicit INT8 calibration), or build without "
                "--dla-core"
            )
        if options.precision == "fp32":
            raise FumeEdgeError("--dla-core: DLA runs FP16 or INT8 only; add --fp16 or --int8")

    network_flags: tuple[str, ...] = ("EXPLICIT_BATCH",) if major < 10 else ()
    builder: list[str] = []
    if not strongly_typed:
        builder += {"fp32": [], "fp16": ["FP16"], "int8": ["INT8", "FP16"]}[options.precision]
    if options.dla_core is not None:
        builder.append("GPU_FALLBACK")
    if options.version_compatible:
        builder.append("VERSION_COMPATIBLE")
    onnx_form = {"fp32": "float", "fp16": "fp16" if strongly_typed else "float", "int8": "qdq"}[options.precision]
    entropy = options.precision == "int8" and options.calibrator == "entropy"
    if entropy:
        onnx_form = "float"  # the calibrator measures ranges itself; no Q/DQ in the graph
    precision = {"int8": f"int8-{options.calibrator}"}.get(options.precision, options.precision)
    dynamic = contract is not None and contract.dynamic_batch
    if dynamic and options.dla_core is not None:
        raise FumeEdgeError(
            "--dla-core: DLA runs static shapes only and this model has a dynamic batch; export it without "
            "--dynamic-batch (a static --batch N), or build without --dla-core"
        )
    if dynamic and entropy:
        raise FumeEdgeError(
            "--calibrator entropy: TensorRT's calibrator reads a static input shape and this model has a dynamic "
            "batch; use the default QDQ route (--calibrator qdq), or export a static --batch N"
        )
    return BuildPlan(
        network_flags=network_flags,
        builder_flags=tuple(builder),
        onnx_form=onnx_form,
        entropy_calibrator=entropy,
        workspace_bytes=int(options.workspace_gb * (1 << 30)),
        optimization_level=options.opt_level,
        dla_core=options.dla_core,
        sidecar_precision=precision,
        profile=batch_profile(contract) if contract and dynamic else (),
    )


def calibration_cache_name(tensorrt_version: str, onnx_sha256: str, manifest_sha256: str) -> str:
    """The entropy calibrator's cache file in the calibration folder: one per TensorRT version, network (the sha256
    of the ONNX built) and data (the calibration manifest's sha256), as TensorRT leaves recalibration to us."""
    return f"trt{tensorrt_version}_entropy_{onnx_sha256[:16]}_{manifest_sha256[:16]}.cache"
