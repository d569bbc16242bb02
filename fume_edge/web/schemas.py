"""What each endpoint accepts: one pydantic model per body or query, so a hostile request is a 400, never a 500.

Every model forbids unknown keys and bounds every number and string; `parse` turns a validation failure into one
line naming the field (`page: Input should be a valid integer`), which the server sends as `{"error": ...}`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, ValidationError

from fume_edge.alerts.event import ALERT_TYPES, parse_iso

MAX_BODY_BYTES = 4096
MAX_PAGE = 200
MAX_HOURS = 24 * 365
EXAMPLE = 'send a JSON object, e.g. {"subject": "cow-7"}'

Model = TypeVar("Model", bound=BaseModel)


class BadRequest(ValueError):
    """A request the server refuses with 400 and this message."""


def _epoch(text: Any) -> float:
    try:
        if not isinstance(text, str) or len(text) > 64:
            raise ValueError
        return parse_iso(text)
    except (ValueError, OverflowError, OSError):
        raise ValueError("expected an ISO-8601 time, e.g. 2026-05-01T12:00:00Z") from None


Epoch = Annotated[float, BeforeValidator(_epoch)]
_JSON_TYPES = {
    list: "an array",
    str: "a string",
    type(None): "null",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}
SubjectFilter = Annotated[str, Field(max_length=64)]
StationFilter = Annotated[str, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertsQuery(_Strict):
    """`GET /api/alerts`: filters and one page (0 is the newest)."""

    type: Literal[ALERT_TYPES] | None = None  # type: ignore[valid-type]
    since: Epoch | None = None
    until: Epoch | None = None
    subject: SubjectFilter | None = None
    station: StationFilter | None = None
    page: int = Field(0, ge=0, le=1_000_000)
    per_page: int = Field(20, ge=1, le=MAX_PAGE)


class StatusQuery(_Strict):
    """`GET /api/status`: the station shown in detail (default: the first)."""

    station: StationFilter | None = None


class TrendQuery(_Strict):
    """`GET /api/trend`: a window of `hours` back from now (a live run) or from the newest row (an archive);
    without `hours`, the window fits the rows of the last week."""

    hours: float | None = Field(None, ge=0.02, le=MAX_HOURS, allow_inf_nan=False)
    subject: SubjectFilter | None = None
    station: StationFilter | None = None


class SubjectBody(_Strict):
    """`POST /api/subject`: `{"subject": "cow-7", "station": "pen-2"}`; an empty string or null clears it (the key
    is required); without `station` (or null) it is for every station."""

    subject: StrictStr | None = Field(..., max_length=256)
    station: StrictStr | None = Field(None, max_length=256)


class ModelBody(_Strict):
    """`POST /api/model`: `{"bundle": "/var/lib/fume-edge/incoming/fume-2026-12.fume"}`, a bundle file already on
    the device (copied there with scp, a USB stick) or an https URL it can fetch; never the bundle itself."""

    bundle: StrictStr = Field(..., min_length=1, max_length=1024)


def parse(model: type[Model], data: Any) -> Model:
    """`data` as `model`, or BadRequest naming the first offending field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise BadRequest(f"{where}: {first['msg']}") from None


def parse_json_body(raw: bytes, model: type[Model]) -> Model:
    """A JSON object body as `model`; anything else (empty, not JSON, too deep, not an object) is a BadRequest."""
    if not raw.strip():
        raise BadRequest(f"the body is empty; {EXAMPLE}")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest(f"the body is not JSON; {EXAMPLE}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the body is {_JSON_TYPES[type(data)]}, not a JSON object; {EXAMPLE}")
    return parse(model, data)
