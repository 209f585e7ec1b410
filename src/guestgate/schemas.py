"""Field types shared by the request and response schemas of every domain.

Validators raise `PydanticCustomError("guestgate_invalid", ..., {"reason": ...})`; the error
handler turns that into `The '<param>' parameter <reason>.`
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, GetCoreSchemaHandler, GetJsonSchemaHandler, PlainSerializer
from pydantic.json_schema import JsonSchemaValue, WithJsonSchema
from pydantic_core import PydanticCustomError, core_schema

from guestgate import networks

INVALID = "guestgate_invalid"
OUT_OF_RANGE = "guestgate_range"


def invalid(reason: str) -> PydanticCustomError:
    """A validation error whose message completes `The '<param>' parameter ...`."""
    return PydanticCustomError(INVALID, "{reason}", {"reason": reason})


def _branch(json_schema: JsonSchemaValue, kind: str) -> JsonSchemaValue:
    """The part of a schema a bound belongs on: itself, or its `kind` branch if it is nullable."""
    if "anyOf" in json_schema:
        found: JsonSchemaValue = next(s for s in json_schema["anyOf"] if s.get("type") == kind)
        return found
    return json_schema


@dataclass(frozen=True)
class Between:
    """Annotated marker: an integer in [lo, hi] (hi optional), documented in the schema."""

    lo: int
    hi: int | None = None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        target = _branch(json_schema, "integer")
        target["minimum"] = self.lo
        if self.hi is not None:
            target["maximum"] = self.hi
        return json_schema

    def _check(self, value: int) -> int:
        if value < self.lo or (self.hi is not None and value > self.hi):
            raise PydanticCustomError(OUT_OF_RANGE, "out of range", {"lo": self.lo, "hi": self.hi})
        return value


@dataclass(frozen=True)
class MaxItems:
    """Annotated marker: a list of at most `limit` items, refused before any item is validated.

    Every list a request carries is capped (and the cap is in the schema as `maxItems`): a body
    of a million items is refused at the count, without parsing them one by one first.
    """

    limit: int
    noun: str = "items"

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_before_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        _branch(json_schema, "array")["maxItems"] = self.limit
        return json_schema

    def _check(self, value: Any) -> Any:
        if isinstance(value, list | tuple) and len(value) > self.limit:
            raise invalid(f"must list at most {self.limit} {self.noun}")
        return value


def _format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# RFC 3339 UTC with Z, second precision.
Timestamp = Annotated[
    datetime,
    PlainSerializer(_format_timestamp, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "example": "2025-10-29T08:00:00Z"}),
]

_VALID_ZONES: frozenset[str] | None = None


def _check_timezone(value: str) -> str:
    global _VALID_ZONES  # noqa: PLW0603  (computed once, on first use, not at import)
    if _VALID_ZONES is None:
        _VALID_ZONES = frozenset(available_timezones())
    if value not in _VALID_ZONES:
        raise invalid("must be a valid IANA time zone")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise invalid("must be a valid IANA time zone") from exc
    return value


TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]

_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def _check_color(value: str) -> str:
    if not _COLOR.fullmatch(value):
        raise invalid("must be a colour as #RRGGBB or #RGB")
    return value


HexColor = Annotated[
    str, AfterValidator(_check_color), WithJsonSchema({"type": "string", "pattern": f"^{_COLOR.pattern}$"})
]


def _check_cidr(value: str) -> str:
    try:
        return networks.normalize(value)
    except ValueError as exc:
        raise invalid(
            "must be a valid RFC 4632 address (an IP address or a subnet in CIDR notation)"
        ) from exc


CIDR = Annotated[
    str, AfterValidator(_check_cidr), WithJsonSchema({"type": "string", "example": "10.0.0.0/24"})
]


def _check_name(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise invalid("must not be empty")
    if len(stripped) > 200:
        raise invalid("must be at most 200 characters")
    return stripped


Name = Annotated[
    str, AfterValidator(_check_name), WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 200})
]
