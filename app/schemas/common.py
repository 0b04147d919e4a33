"""Shared schema pieces: pagination, error body, strict input base, and the input text rules.

Every string a client sends that may reach the database is `Text` (or lives in a
`JsonObject`): it never holds U+0000 (PostgreSQL text cannot store it) or an unpaired
surrogate (not encodable as UTF-8, so no database and no JSON response can carry it). JSON a
client sends nests at most `MAX_JSON_DEPTH` levels. Violations are refused by request
validation (422) before any query runs, on every database alike.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    TypeAdapter,
)
from pydantic.json_schema import JsonSchemaValue, SkipJsonSchema
from pydantic_core import CoreSchema, PydanticCustomError
from typing_extensions import TypeAliasType

from app.core.json_input import json_path
from app.core.text import unstorable

T = TypeVar("T")

MAX_JSON_DEPTH = 32  # objects/arrays inside a JSON field of a request (preferences `extra`)
TEXT_RULE = "Text must not contain U+0000 (NUL) or unpaired surrogate code points"
NUMBER_RULE = "Numbers must be finite (no NaN or Infinity)"
# scheme, host[:port], then anything without whitespace (the JSON schema states the same)
HTTP_URL_PATTERN = r"[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][^\s\u0000]*)?"
_HTTP_URL = re.compile(HTTP_URL_PATTERN)


def check_text(value: str) -> str:
    """Refuse text with U+0000 or an unpaired surrogate."""
    if unstorable(value):
        raise PydanticCustomError("text_unstorable", TEXT_RULE)
    return value


def find_json_problem(value: Any, *, max_depth: int) -> tuple[list[int | str], str] | None:
    """The path and description of the first unstorable string, non-finite number or
    over-deep container.

    Walks without recursion, so no input can exhaust the stack."""
    stack: list[tuple[Any, list[int | str]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if unstorable(item):
                return path, TEXT_RULE
            continue
        if isinstance(item, float) and not math.isfinite(item):
            return path, NUMBER_RULE  # NaN/Infinity: Python's JSON parser takes them
        if not isinstance(item, dict | list):
            continue
        if len(path) >= max_depth:
            return path, f"nested deeper than {max_depth} levels"
        children: list[tuple[int | str, Any]]
        if isinstance(item, list):
            children = list(enumerate(item))
        else:
            if any(isinstance(key, str) and unstorable(key) for key in item):
                return path, f"a key: {TEXT_RULE}"
            children = list(item.items())
        stack.extend((child, [*path, key]) for key, child in reversed(children))
    return None


def check_json_object(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse a JSON object with unstorable text (keys too), NaN/Infinity, or too deep."""
    problem = find_json_problem(value, max_depth=MAX_JSON_DEPTH)
    if problem is not None:
        path, reason = problem
        raise PydanticCustomError(
            "json_unstorable", "{path}: {reason}", {"path": json_path(path), "reason": reason}
        )
    return value


def check_http_url(value: str) -> str:
    """Refuse anything but an absolute http(s) URL with a host (no `javascript:`, `data:`)."""
    if _HTTP_URL.fullmatch(value) is None:
        raise PydanticCustomError("url_not_http", "Must be an absolute http:// or https:// URL")
    return value


def to_utc(value: datetime) -> datetime:
    """An aware time in UTC; refuse one that leaves the years 1..9999 once in UTC."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_out_of_range", "Time must lie between the years 1 and 9999 in UTC"
        ) from None


@dataclass(frozen=True)
class _Documented:
    """Adds keywords to a type's JSON schema (the rule is enforced by its validator)."""

    keywords: tuple[tuple[str, Any], ...]

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The wrapped type's schema plus the keywords."""
        schema = handler(core_schema)
        schema.update(self.keywords)
        return schema


_NO_NUL = _Documented((("pattern", "^[^\\u0000]*$"),))

# Text a client sends: never U+0000 or an unpaired surrogate.
Text = Annotated[str, AfterValidator(check_text), _NO_NUL]
# An http(s) URL with a host (avatars and other links shown to people).
HttpUrlText = Annotated[
    str,
    AfterValidator(check_text),
    AfterValidator(check_http_url),
    _Documented((("format", "uri"), ("pattern", f"^{HTTP_URL_PATTERN}$"))),
]


class _KeysWithoutNul:
    """Documents that an object's keys never hold U+0000 (`propertyNames`).

    Given on the key type: pydantic turns a key `pattern` into `patternProperties`, which
    would let any other key through unchecked."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """A string schema that refuses U+0000."""
        schema = handler(core_schema)
        schema["not"] = {"pattern": "\\u0000"}
        return schema


_JsonKey = Annotated[str, _KeysWithoutNul()]
# The JSON schema of a value inside a JsonObject, recursive, so a client (and schemathesis)
# reads the text rule at every depth; validation itself is check_json_object's single walk.
JsonValue = TypeAliasType(
    "JsonValue",
    "Annotated[str, _NO_NUL] | int | float | bool | list[JsonValue]"
    " | dict[_JsonKey, JsonValue] | None",
)


@dataclass(frozen=True)
class _DocumentedAsJsonObject:
    """Shows a JsonObject as the recursive JSON document schema above."""

    description: str

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The recursive schema (its value type lands in the components), with a description."""
        schema = handler(_JSON_OBJECT_DOC)
        schema["description"] = self.description
        return schema


_JSON_OBJECT_DOC = TypeAdapter(dict[_JsonKey, JsonValue]).core_schema

# A free-form JSON object: text rules for every key and string, at most MAX_JSON_DEPTH deep.
JsonObject = Annotated[
    dict[str, Any],
    AfterValidator(check_json_object),
    _DocumentedAsJsonObject(f"any JSON object, at most {MAX_JSON_DEPTH} levels deep"),
]

# "may be left out, but never null": the schema shows only the type; a null that is sent
# anyway passes validation and the service answers 422 for it
Unset = SkipJsonSchema[None]


def _no_bool_or_text(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise ValueError("Input should be a JSON integer")
    return value


def _text_only(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("Input should be an RFC 3339 date-time string")
    return value


# JSON types as the schema states them: pydantic's lax mode would also take `false` or "3" for
# an integer and a number of seconds for a date-time (StrictInt would refuse 3.0, which JSON
# Schema counts as an integer). Put them after any Field(...) constraint in an Annotated.
NoBoolOrText = BeforeValidator(_no_bool_or_text)
TextOnly = BeforeValidator(_text_only)
JsonDatetime = Annotated[AwareDatetime, TextOnly]
# A stored timestamp: an RFC 3339 string with a time zone, normalised to UTC.
UtcDateTime = Annotated[AwareDatetime, TextOnly, AfterValidator(to_utc)]
Count = Annotated[int, Field(ge=0), NoBoolOrText]


def _drop_null_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omitted() -> Any:
    """The default of an `X | Unset` field: None, without a `default: null` in the schema."""
    return Field(default=None, json_schema_extra=_drop_null_default)


class InputModel(BaseModel):
    """Base of every request body: unknown fields are an error, strings are trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class ReadModel(BaseModel):
    """Base of every response body built from ORM objects."""

    model_config = ConfigDict(from_attributes=True)


class ErrorBody(BaseModel):
    """The body of every error the app produces."""

    detail: str
    code: str


class ValidationErrorItem(BaseModel):
    """One field that failed validation."""

    type: str = Field(description="pydantic's error type, e.g. `missing`, `string_too_long`")
    loc: list[str | int] = Field(
        description="where: `body`, `query`, `path` or `header`, then the field"
    )
    msg: str


class ValidationErrorBody(BaseModel):
    """A request that failed schema validation: the list of field errors."""

    detail: list[ValidationErrorItem]
    code: Literal["validation_error"]


class Page(BaseModel, Generic[T]):
    """A cursor-paginated list."""

    items: list[T]
    next_cursor: str | None = None
