"""The adapter file format (`CONFIG_DIR/app/*.json`), validated field by field."""

from __future__ import annotations

import re
from typing import Any, Literal

from jsonschema import Draft202012Validator, SchemaError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.services.tools import ApprovalPolicy
from app.services.urls import UrlError, parse_url

NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"
OPERATION_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.-]+)\}")
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "authorization", "cookie"}
)
MAX_RESULT_BYTES = 64 * 1024


class AuthConfig(BaseModel):
    """A secret sent as a header or a query parameter, read from an environment variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["header", "query"]
    name: str = Field(min_length=1, max_length=100, pattern=_TOKEN.pattern)
    env: str
    prefix: str = Field(default="", max_length=40)

    @field_validator("env")
    @classmethod
    def _variable_name(cls, value: str) -> str:
        """The name of a variable, never the secret itself (which is not echoed)."""
        if not _ENV_NAME.match(value):
            raise ValueError("must be the name of an environment variable (e.g. WEATHER_API_KEY)")
        return value


class ResponseShape(BaseModel):
    """What of the answer the model sees: a JSON pointer, then a field selection, then a cap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pointer: str = ""
    fields: list[str] | None = Field(default=None, min_length=1)
    max_bytes: int | None = Field(default=None, ge=256, le=16 * 1024 * 1024)

    @field_validator("pointer")
    @classmethod
    def _json_pointer(cls, value: str) -> str:
        """RFC 6901: empty (the whole document) or `/a/0/b`."""
        if value and not value.startswith("/"):
            raise ValueError("must be a JSON pointer: empty or starting with '/'")
        return value


def _object_schema(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A JSON Schema of an object with named properties."""
    if value is None:
        return None
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
    if value.get("type") != "object" or not isinstance(value.get("properties"), dict):
        raise ValueError('must be an object schema: {"type": "object", "properties": {...}}')
    return value


class Parameters(BaseModel):
    """The arguments of an operation, by where they go: path, query string, or JSON body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: dict[str, Any] | None = None
    query: dict[str, Any] | None = None
    body: dict[str, Any] | None = None

    @field_validator("path", "query", "body")
    @classmethod
    def _schemas(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """Each location is an object schema whose properties are the arguments."""
        return _object_schema(value)

    def groups(self) -> dict[str, dict[str, Any]]:
        """The declared schemas by location."""
        found = {"path": self.path, "query": self.query, "body": self.body}
        return {where: schema for where, schema in found.items() if schema is not None}


class OperationConfig(BaseModel):
    """One HTTP call the model may make."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=OPERATION_NAME)
    description: str = Field(min_length=1, max_length=2000)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(min_length=1, max_length=2000)
    parameters: Parameters = Field(default_factory=Parameters)
    response: ResponseShape = Field(default_factory=ResponseShape)
    timeout_s: float | None = Field(default=None, gt=0, le=600)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        """`get` and `GET` are the same method."""
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_parameters(self) -> OperationConfig:
        """Placeholders match path parameters; no argument name is used twice."""
        if not self.path.startswith("/") or "?" in self.path or "#" in self.path:
            raise ValueError("path: must start with '/' and hold no query or fragment")
        placeholders = set(PLACEHOLDER.findall(self.path))
        declared = set((self.parameters.path or {}).get("properties", {}))
        if placeholders != declared:
            missing = sorted(placeholders - declared) or sorted(declared - placeholders)
            raise ValueError(
                f"parameters.path: the path's {{placeholders}} and the path parameters differ "
                f"({', '.join(missing)})"
            )
        seen: dict[str, str] = {}
        for where, schema in self.parameters.groups().items():
            for name in schema["properties"]:
                if name in seen:
                    raise ValueError(
                        f"parameters.{where}: {name!r} is also a {seen[name]} parameter"
                    )
                seen[name] = where
        return self


class AdapterFile(BaseModel):
    """One adapter file: an HTTP service and the operations the model may call on it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_ref: str | None = Field(default=None, alias="$schema")
    comment: str | None = Field(default=None, alias="_comment")
    name: str = Field(pattern=NAME)
    description: str = Field(default="", max_length=2000)
    enabled: bool = True
    base_url: str | None = None
    auth: AuthConfig | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float | None = Field(default=None, gt=0, le=600)
    connect_timeout_s: float | None = Field(default=None, gt=0, le=120)
    max_response_bytes: int | None = Field(default=None, ge=1024, le=256 * 1024 * 1024)
    max_result_bytes: int = Field(default=MAX_RESULT_BYTES, ge=256, le=16 * 1024 * 1024)
    openapi: str | None = Field(default=None, min_length=1)
    include_operations: list[str] = Field(default_factory=list)
    operations: list[OperationConfig] = Field(default_factory=list)
    approval: ApprovalPolicy = "never"  # calls that wait for the user's approval

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, value: Any) -> Any:
        """Secrets never live in this file: say where they go instead of 'extra field'."""
        if isinstance(value, dict):
            for key in ("api_key", "token", "password", "secret"):
                if key in value:
                    raise ValueError(
                        f"{key}: not allowed (secrets never go in this file); "
                        "name an environment variable in auth.env instead"
                    )
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """An absolute http(s) URL without query, fragment or credentials; normalised."""
        if value is None:
            return None
        try:
            url = parse_url(value)
        except UrlError as exc:
            raise ValueError(str(exc)) from None
        if url.query is not None or url.fragment is not None:
            raise ValueError("must not contain a query or a fragment")
        return url.url().rstrip("/")

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, value: dict[str, str]) -> dict[str, str]:
        """Static, non-secret headers (`Accept`, `User-Agent`, ...)."""
        for name, text in value.items():
            if not _TOKEN.match(name) or name.lower() in RESERVED_HEADERS:
                raise ValueError(f"{name!r} cannot be set here (secrets go in auth)")
            if "\r" in text or "\n" in text:
                raise ValueError(f"{name!r}: header values cannot contain line breaks")
        return value

    @model_validator(mode="after")
    def _check_operations(self) -> AdapterFile:
        """Unique names, an allow-list with `openapi`, and at least one operation."""
        if self.base_url is None and (self.enabled or not self.openapi):
            raise ValueError(
                "base_url: required (unless the OpenAPI document names an absolute server URL)"
            )
        if self.include_operations and not self.openapi:
            raise ValueError("include_operations: only used together with 'openapi'")
        if self.openapi and not self.include_operations:
            raise ValueError("include_operations: list the OpenAPI operationIds to expose")
        if not self.operations and (self.enabled or not self.openapi):
            raise ValueError("operations: an adapter needs at least one operation")
        names: set[str] = set()
        for op in self.operations:
            if op.name in names:
                raise ValueError(f"operations: the name {op.name!r} is used twice")
            names.add(op.name)
            query = set((op.parameters.query or {}).get("properties", {}))
            if self.auth and self.auth.type == "query" and self.auth.name in query:
                raise ValueError(
                    f"operations: {op.name!r} has a query parameter named like auth.name"
                )
        return self
