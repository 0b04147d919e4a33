"""Helpers for the provider tests: run a stream to the end and build model configs."""

from __future__ import annotations

from typing import Any

from app.services.llm import ChatMessage, LLMEvent, ModelConfig, Provider, ProviderError
from app.services.tools import Tool

API_KEY = "sk-test-0123456789abcdef"
KEY_ENV = "FAKE_LLM_KEY"
TOOL = Tool(
    server="time",
    name="get_current_time",
    qualified_name="time__get_current_time",
    description="Current time in a timezone",
    input_schema={"type": "object", "properties": {"timezone": {"type": "string"}}},
)


def model_for(kind: str, base_url: str, **overrides: Any) -> ModelConfig:
    """A model config pointing at the fake upstream."""
    values: dict[str, Any] = {
        "id": f"fake-{kind}",
        "name": f"Fake {kind}",
        "provider": kind,
        "model": f"{kind}-model-1",
        "base_url": base_url,
        "api_key_env": KEY_ENV,
        "supports_tools": True,
        "max_output_tokens": 1000,
        "timeout_s": 2.0,
    }
    values.update(overrides)
    return ModelConfig(**values)


def user(text: str) -> list[ChatMessage]:
    """A one-message conversation."""
    return [ChatMessage(role="user", content=text)]


async def collect(
    provider: Provider,
    model: ModelConfig,
    messages: list[ChatMessage],
    *,
    tools: list[Tool] | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> tuple[list[LLMEvent], ProviderError | None]:
    """Every event the stream yielded, and the ProviderError that ended it (if any)."""
    events: list[LLMEvent] = []
    try:
        async for event in provider.stream(
            model=model,
            messages=messages,
            tools=tools or [],
            temperature=temperature,
            max_tokens=max_tokens,
        ):
            events.append(event)
    except ProviderError as exc:
        return events, exc
    return events, None


def text_of(events: list[LLMEvent]) -> str:
    """The concatenated text deltas."""
    return "".join(getattr(event, "content", "") for event in events)
