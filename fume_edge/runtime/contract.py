"""The model contract (docs/models.md, "Export contract"), checked whenever a model file is loaded.

A graph with a missing output, five pH logits, float masks or class names the alert policy cannot map would
otherwise run "successfully" and never alert. Every backend describes its model's I/O as `TensorSpec`s and its
metadata as a `ModelContract`; `check_io` compares them with what fume-edge needs and names the first thing that
does not fit. The contract also maps the model's own class order onto fume-edge's names (`labels.py`), so the alert
policy finds Acidotic and the gas class by name, never by a hard-coded index of someone else's model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from collections.abc import Mapping, Sequence

import numpy as np

from fume_edge.errors import FumeEdgeError
from fume_edge.labels import PH_CLASS_NAMES, SEG_CLASS_NAMES
from fume_edge.runtime.pre import Preprocessing

INPUT_NAMES = ("co2", "ch4", "modality_mask")
SEG_OUTPUTS: Mapping[str, str] = {"co2": "co2_seg", "ch4": "ch4_seg"}  # graph output name of each gas's mask
HEAD_OUTPUTS = ("ph_logits", *SEG_OUTPUTS.values())
META = "fume_edge."  # prefix of fume-edge's ONNX metadata_props keys
DYNAMIC = "batch"  # the name of a dynamic batch dimension (`export --dynamic-batch`), as ONNX Runtime reports it


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as the runtime reports it: numpy dtype name and shape (str for a dynamic dim)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def describe(self) -> str:
        return f"{self.dtype}[{','.join(str(d) for d in self.shape)}]"


def _order(model_names: Sequence[str], ours: Sequence[str], what: str, source: str) -> tuple[int, ...]:
    """Index into the model's classes of each of our class names (case-insensitive)."""
    lookup = {name.strip().lower(): i for i, name in enumerate(model_names)}
    missing = [name for name in ours if name.lower() not in lookup]
    if missing or len(model_names) != len(ours):
        raise FumeEdgeError(
            f"{source}: {what} {list(model_names)} cannot be mapped onto {list(ours)} (the alert policy needs each "
            f"of them{', missing ' + ', '.join(missing) if missing else ''}); export from a checkpoint with those "
            "class names (`fume-edge import` / `train` record them)"
        )
    return tuple(lookup[name.lower()] for name in ours)


def _shape_fits(got: tuple[int | str, ...], wanted: tuple[int | str, ...]) -> bool:
    """Equal dims, where a `DYNAMIC` wanted dim takes what runtimes report for one: a symbolic name (ONNX Runtime)
    or -1 (TensorRT); a fixed number there is a static graph, not a dynamic one."""
    return len(got) == len(wanted) and all(
        (isinstance(g, str) or g == -1) if w == DYNAMIC else g == w for g, w in zip(got, wanted, strict=True)
    )


def rows_per_call(batch_dim: object) -> int:
    """Inputs one call of a graph takes, from its leading dimension as any runtime reports it: the static batch N,
    or 1 where the dimension is dynamic (a symbolic name, -1 or 0), one pair a row."""
    return batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else 1


def _flag(meta: Mapping[str, str], key: str, source: str) -> bool:
    """A true/false metadata value (absent: false); anything else is one line naming the key."""
    value = meta.get(META + key, "false").strip().lower()
    if value not in ("true", "false"):
        raise FumeEdgeError(
            f"{source}: metadata {META}{key} is {meta[META + key]!r}, expected true or false; re-export with "
            "`fume-edge export`"
        )
    return value == "true"


@dataclass(frozen=True)
class ModelContract:
    """What a model file says about itself: preprocessing, class names and the heads it has."""

    preprocessing: Preprocessing
    class_names: tuple[str, ...] = PH_CLASS_NAMES
    seg_class_names: tuple[str, ...] = SEG_CLASS_NAMES
    heads: tuple[str, ...] = HEAD_OUTPUTS  # the outputs of HEAD_OUTPUTS this model has (a baseline lacks some)
    source: str = "model"
    mask_scale: int = 1  # seg masks at 1/mask_scale of the input size (`export --mask-scale`)
    batch: int = 1  # pairs per call (`export --batch N`: one call for N stations); the most, when dynamic
    dynamic_batch: bool = False  # `export --dynamic-batch`: a call takes 1..batch rows, a short tick is not padded

    def __post_init__(self) -> None:
        self.ph_order  # noqa: B018 - unmappable names fail at load, not at the first alert
        self.seg_order  # noqa: B018

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocessing.input_size

    @cached_property  # read for every prediction: mapped once
    def ph_order(self) -> tuple[int, ...]:
        """Model logit index of each of `labels.PH_CLASS_NAMES`."""
        return _order(self.class_names, PH_CLASS_NAMES, "pH class names", self.source)

    @cached_property
    def seg_order(self) -> tuple[int, ...]:
        """Model seg class id of each of `labels.SEG_CLASS_NAMES`."""
        return _order(self.seg_class_names, SEG_CLASS_NAMES, "seg class names", self.source)

    @cached_property
    def seg_lut(self) -> np.ndarray | None:
        """Model seg id -> fume-edge seg id, or None when the model already uses fume-edge's order."""
        if self.seg_order == tuple(range(len(self.seg_order))):
            return None
        table = np.zeros(256, np.int32)
        table[list(self.seg_order)] = np.arange(len(self.seg_order), dtype=np.int32)
        return table

    @property
    def batch_dim(self) -> int | str:
        """The batch dimension the graph declares: the static batch, or `DYNAMIC` (any symbolic or -1 dim fits)."""
        return DYNAMIC if self.dynamic_batch else self.batch

    def expected_inputs(self) -> list[TensorSpec]:
        width, height = self.input_size
        frame = (self.batch_dim, 1, height, width)
        return [
            TensorSpec("co2", "float32", frame),
            TensorSpec("ch4", "float32", frame),
            TensorSpec("modality_mask", "float32", (self.batch_dim, 2)),
        ]

    @property
    def seg_shape(self) -> tuple[int, int]:
        """(height, width) of the seg masks: the input size, or 1/mask_scale of it."""
        width, height = self.input_size
        return height // self.mask_scale, width // self.mask_scale

    def expected_outputs(self) -> list[TensorSpec]:
        height, width = self.seg_shape
        n = self.batch_dim
        specs = {
            "ph_logits": TensorSpec("ph_logits", "float32", (n, len(self.class_names))),
            **{name: TensorSpec(name, "int32", (n, height, width)) for name in SEG_OUTPUTS.values()},
        }
        return [specs[name] for name in self.heads]

    def check_io(self, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> None:
        """Raise one error naming the first input or output that does not fit the contract (extra outputs are fine)."""
        for kind, have, wanted in (
            ("input", inputs, self.expected_inputs()),
            ("output", outputs, self.expected_outputs()),
        ):
            by_name = {spec.name: spec for spec in have}
            for spec in wanted:
                got = by_name.get(spec.name)
                if got is None:
                    raise FumeEdgeError(
                        f"{self.source}: {kind} {spec.name!r} is missing (has {', '.join(by_name) or 'none'}); "
                        f"a fume-edge model has {kind}s {', '.join(s.name for s in wanted)} — re-export it with "
                        "`fume-edge export`"
                    )
                if got.dtype != spec.dtype or not _shape_fits(tuple(got.shape), spec.shape):
                    raise FumeEdgeError(
                        f"{self.source}: {kind} {spec.name!r} is {got.describe()}, expected {spec.describe()}; "
                        "re-export it with `fume-edge export` (static shape, a --dynamic-batch batch dimension aside; "
                        "argmax inside the graph)"
                    )

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], source: str) -> ModelContract:
        """Read fume-edge's ONNX metadata_props (also copied into engine sidecars); older files lack some keys."""
        try:
            class_names = tuple(json.loads(meta.get(META + "class_names", "null")) or PH_CLASS_NAMES)
            seg_names = tuple(json.loads(meta.get(META + "seg_class_names", "null")) or SEG_CLASS_NAMES)
            heads = tuple(json.loads(meta.get(META + "heads", "null")) or HEAD_OUTPUTS)
            if META + "preprocessing" in meta:
                preprocessing = Preprocessing.from_dict(json.loads(meta[META + "preprocessing"]), source)
            else:  # written before the contract was recorded: 8-bit /255, full 16-bit range, area resize
                size = json.loads(meta.get(META + "input_size", "null"))
                preprocessing = (
                    Preprocessing() if size is None else Preprocessing(input_size=(int(size[0]), int(size[1])))
                )
        except (json.JSONDecodeError, TypeError, ValueError, IndexError) as exc:
            raise FumeEdgeError(
                f"{source}: malformed fume-edge metadata ({exc}); re-export with `fume-edge export`"
            ) from None
        unknown = [h for h in heads if h not in HEAD_OUTPUTS]
        if unknown or not heads:
            raise FumeEdgeError(
                f"{source}: metadata {META}heads {list(heads)} is not a subset of {list(HEAD_OUTPUTS)}; "
                "re-export with `fume-edge export`"
            )
        try:
            mask_scale, batch = int(meta.get(META + "mask_scale", "1")), int(meta.get(META + "batch", "1"))
        except ValueError:
            raise FumeEdgeError(
                f"{source}: malformed {META}mask_scale or {META}batch; re-export with `fume-edge export`"
            ) from None
        if batch < 1:
            raise FumeEdgeError(f"{source}: {META}batch {batch} must be >= 1; re-export with `fume-edge export`")
        dynamic = _flag(meta, "dynamic_batch", source)
        return cls(preprocessing, class_names, seg_names, heads, source, mask_scale, batch, dynamic)

    def to_metadata(self) -> dict[str, str]:
        return (
            {
                META + "class_names": json.dumps(list(self.class_names)),
                META + "seg_class_names": json.dumps(list(self.seg_class_names)),
                META + "heads": json.dumps(list(self.heads)),
                META + "input_size": json.dumps(list(self.input_size)),
                META + "preprocessing": self.preprocessing.to_json(),
            }
            | ({META + "mask_scale": str(self.mask_scale)} if self.mask_scale > 1 else {})
            | ({META + "batch": str(self.batch)} if self.batch > 1 else {})
            | ({META + "dynamic_batch": "true"} if self.dynamic_batch else {})
        )


def check_finite(name: str, values: np.ndarray, source: str) -> None:
    """A model whose output is NaN/inf on a plain input is broken; say so at load instead of never alerting."""
    if not np.all(np.isfinite(values)):
        raise FumeEdgeError(
            f"{source}: output {name!r} is not finite on a plain test input (NaN or inf); the model "
            "file is broken — re-export it from a good checkpoint"
        )
