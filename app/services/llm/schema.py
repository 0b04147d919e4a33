"""Validation of `model_configs.json`: every error names the file, the model and the field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.services.llm.base import ModelConfig, ModelConfigError, Pricing, ReasoningConfig

DEFAULT_CONTEXT_WINDOW = 128000
ECHO_CONTEXT_WINDOW = 8192
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Reasoning(BaseModel):
    """`reasoning`: `{"effort": ...}` (OpenAI-style) or `{"budget_tokens": N}` (Anthropic)."""

    model_config = ConfigDict(extra="forbid")

    effort: Literal["low", "medium", "high"] | None = None
    budget_tokens: int | None = Field(default=None, ge=1024)

    @model_validator(mode="after")
    def _one_of(self) -> _Reasoning:
        if (self.effort is None) == (self.budget_tokens is None):
            raise ValueError("give exactly one of effort or budget_tokens")
        return self


class _Pricing(BaseModel):
    """`pricing`: USD per million input / output / cached input tokens (CONFIG.md v1.1)."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(ge=0, le=100000)
    output_per_mtok: float = Field(ge=0, le=100000)
    cached_input_per_mtok: float | None = Field(default=None, ge=0, le=100000)
    as_of: str | None = Field(default=None, max_length=40)  # when the prices were taken


class _ModelEntry(BaseModel):
    """One model as written in the file (before provider-specific defaults)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    name: str | None = None
    provider: Literal["openai", "anthropic", "echo", "openai_responses", "google"]
    model: str | None = Field(default=None, min_length=1)
    base_url: str | None = None
    api_key_env: str | None = None
    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int = Field(default=4096, gt=0)
    supports_tools: bool | None = None
    supports_vision: bool | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    timeout_s: float = Field(default=120, gt=0)
    fallbacks: list[str] = Field(default_factory=list)
    enabled: bool = True
    delay_ms: float | None = Field(default=None, ge=0)
    reasoning: _Reasoning | None = None
    pricing: _Pricing | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_keys(cls, value: Any) -> Any:
        """Keys never live in this file: say where they go instead of 'extra field'."""
        if isinstance(value, dict) and "api_key" in value:
            raise ValueError(
                "api_key: not allowed (keys never go in this file); "
                "name an environment variable in api_key_env instead"
            )
        return value

    @field_validator("api_key_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        """A variable name such as OPENAI_API_KEY (never the key itself, which is not echoed)."""
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                "must be the name of an environment variable (e.g. OPENAI_API_KEY), not a key"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """An absolute http(s) URL without a trailing slash."""
        if value is None:
            return None
        if not value.startswith(("http://", "https://")) or len(value) < 10:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _upstream_fields(self) -> _ModelEntry:
        """Networked providers need a base URL and an upstream model name."""
        if self.provider != "echo":
            if not self.base_url:
                raise ValueError(f"base_url: required for provider {self.provider!r}")
            if not self.model:
                raise ValueError(f"model: required for provider {self.provider!r}")
        return self

    @model_validator(mode="after")
    def _responses_reasoning(self) -> _ModelEntry:
        """The Responses API takes an effort, not a token budget."""
        if self.provider == "openai_responses" and self.reasoning and self.reasoning.budget_tokens:
            raise ValueError(
                "reasoning: provider 'openai_responses' takes {\"effort\": ...}, not budget_tokens"
            )
        return self


class _ModelFile(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    default_model: str = Field(min_length=1)
    models: list[_ModelEntry] = Field(min_length=1)


def _where(raw: Any, loc: tuple[int | str, ...]) -> str:
    """'model <id> (models[i]), field <f>' for an error location inside the raw document."""
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        index = loc[1]
        entries = raw.get("models") if isinstance(raw, dict) else None
        entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
        ident = entry.get("id") if isinstance(entry, dict) else None
        label = f"model {ident!r} (models[{index}])" if ident else f"models[{index}]"
        field = ".".join(str(part) for part in loc[2:])
        return f"{label}, field {field!r}" if field else label
    return "field " + repr(".".join(str(part) for part in loc) or "(top level)")


def _format(path: Path, raw: Any, error: ValidationError) -> str:
    """A readable message for a pydantic error (never quoting the offending value)."""
    problems = []
    for item in error.errors()[:5]:
        message = str(item["msg"]).removeprefix("Value error, ")
        loc = tuple(item["loc"])
        if ": " in message and loc[:1] == ("models",) and len(loc) == 2:
            field, _, message = message.partition(": ")  # cross-field check names its field
            loc = (*loc, field)
        problems.append(f"{_where(raw, loc)}: {message}")
    return f"{path}: " + "; ".join(problems)


def _to_config(entry: _ModelEntry) -> ModelConfig:
    """Apply provider-specific defaults."""
    echo = entry.provider == "echo"
    return ModelConfig(
        id=entry.id,
        name=entry.name or entry.id,
        provider=entry.provider,
        model=entry.model or ("echo" if echo else ""),
        base_url=entry.base_url,
        api_key_env=entry.api_key_env,
        context_window=entry.context_window
        or (ECHO_CONTEXT_WINDOW if echo else DEFAULT_CONTEXT_WINDOW),
        max_output_tokens=entry.max_output_tokens,
        supports_tools=entry.supports_tools if entry.supports_tools is not None else echo,
        # echo "sees" images: it reports their size (the offline default shows attachments work)
        supports_vision=entry.supports_vision if entry.supports_vision is not None else echo,
        temperature=entry.temperature,
        timeout_s=entry.timeout_s,
        fallbacks=tuple(entry.fallbacks),
        enabled=entry.enabled,
        delay_ms=entry.delay_ms,
        reasoning=(
            ReasoningConfig(
                effort=entry.reasoning.effort, budget_tokens=entry.reasoning.budget_tokens
            )
            if entry.reasoning
            else None
        ),
        pricing=(
            Pricing(
                input_per_mtok=entry.pricing.input_per_mtok,
                output_per_mtok=entry.pricing.output_per_mtok,
                cached_input_per_mtok=entry.pricing.cached_input_per_mtok,
            )
            if entry.pricing
            else None
        ),
    )


def load_model_file(path: Path) -> tuple[str, list[ModelConfig]]:
    """Read and validate the file; returns `(default_model, models)` or raises ModelConfigError."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelConfigError(
            f"{path}: not found (scripts/init_config.py copies the example into CONFIG_DIR)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelConfigError(f"{path}: cannot be read: {exc}") from None
    except ValueError as exc:
        raise ModelConfigError(f"{path}: not valid JSON: {exc}") from None
    try:
        parsed = _ModelFile.model_validate(raw)
    except ValidationError as exc:
        raise ModelConfigError(_format(path, raw, exc)) from None
    ids: set[str] = set()
    for index, entry in enumerate(parsed.models):
        if entry.id in ids:
            raise ModelConfigError(
                f"{path}: model {entry.id!r} (models[{index}]), field 'id': duplicate id"
            )
        ids.add(entry.id)
    for index, entry in enumerate(parsed.models):
        for name in entry.fallbacks:
            if name not in ids or name == entry.id:
                problem = "is the model itself" if name == entry.id else "is not a configured id"
                raise ModelConfigError(
                    f"{path}: model {entry.id!r} (models[{index}]), field 'fallbacks': "
                    f"{name!r} {problem}"
                )
    if parsed.default_model not in ids:
        raise ModelConfigError(
            f"{path}: field 'default_model': {parsed.default_model!r} is not a configured model id"
        )
    return parsed.default_model, [_to_config(entry) for entry in parsed.models]
