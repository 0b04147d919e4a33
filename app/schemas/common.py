"""Shared schema pieces: pagination, error body, strict input base."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

T = TypeVar("T")

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
