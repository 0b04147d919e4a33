"""Loading and validating model_configs.json, availability, defaults, the providers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from app.services.llm import (
    ModelConfigError,
    ModelRegistry,
    TextDelta,
)
from app.services.llm.anthropic import AnthropicProvider
from app.services.llm.echo import EchoProvider
from app.services.llm.openai import OpenAIProvider
from test.fakes.llm_upstream import FakeUpstream
from test.services.llm.support import collect, user

REPO_CONFIG = Path(__file__).resolve().parents[3] / "config"
SHIPPED = json.loads((REPO_CONFIG / "model_configs.json").read_text())


def _write(tmp_path: Path, document: Any) -> Path:
    text = document if isinstance(document, str) else json.dumps(document)
    (tmp_path / "model_configs.json").write_text(text)
    return tmp_path


def _doc(models: list[dict[str, Any]], default: str | None = None) -> dict[str, Any]:
    return {"default_model": default or models[0]["id"], "models": models}


OPENAI = {
    "id": "gpt",
    "provider": "openai",
    "model": "gpt-x",
    "base_url": "https://api.example.com/v1",
    "api_key_env": "OPENAI_API_KEY",
}
ECHO = {"id": "vektor-echo", "provider": "echo"}


def test_shipped_config_without_keys_defaults_to_echo() -> None:
    registry = ModelRegistry.load(REPO_CONFIG, environ={})
    assert registry.default_id == "vektor-echo"
    ids = [m.id for m in registry.list()]
    assert {"gpt-4o-mini", "gpt-4o", "claude-haiku", "claude-sonnet", "vektor-echo"} <= set(ids)
    offline = ["vektor-echo", "vektor-echo-slow"]  # the slow one for the README's cancel demo
    assert [m.id for m in registry.list() if registry.is_available(m.id)] == offline
    slow = registry.get("vektor-echo-slow")
    assert slow is not None and slow.provider == "echo" and slow.delay_ms == 500
    haiku = registry.get("claude-haiku")
    assert haiku is not None and haiku.model == "claude-haiku-4-5"
    mini = registry.get("gpt-4o-mini")
    assert mini is not None and mini.fallbacks == ("claude-haiku",)


def test_shipped_config_with_keys() -> None:
    with_openai = ModelRegistry.load(REPO_CONFIG, environ={"OPENAI_API_KEY": "k"})
    assert with_openai.default_id == "gpt-4o-mini"
    with_anthropic = ModelRegistry.load(REPO_CONFIG, environ={"ANTHROPIC_API_KEY": "k"})
    assert with_anthropic.is_available("claude-haiku")
    assert not with_anthropic.is_available("gpt-4o")
    assert with_anthropic.default_id == "vektor-echo"  # configured default unavailable


def test_describe_lists_enabled_models_for_the_models_endpoint() -> None:
    registry = ModelRegistry.load(REPO_CONFIG, environ={"OPENAI_API_KEY": "k"})
    items = {item["id"]: item for item in registry.describe()}
    assert items["gpt-4o-mini"] == {
        "id": "gpt-4o-mini",
        "name": "GPT-4o mini",
        "provider": "openai",
        "context_window": 128000,
        "supports_tools": True,
        "supports_vision": True,
        "available": True,
        "default": True,
    }
    assert items["vektor-echo"]["supports_vision"] is True  # echo reports what it "sees"
    assert items["claude-haiku"]["available"] is False
    assert [item["id"] for item in items.values() if item["default"]] == ["gpt-4o-mini"]
    disabled = [m.id for m in registry.list() if not m.enabled]
    assert disabled and not set(disabled) & set(items)


@pytest.mark.parametrize(
    ("environ", "available"),
    [
        ({}, False),
        ({"OPENAI_API_KEY": ""}, False),
        ({"OPENAI_API_KEY": "  "}, False),
        ({"OPENAI_API_KEY": "k"}, True),
    ],
)
def test_availability_follows_the_key_variable(
    tmp_path: Path, environ: dict[str, str], available: bool
) -> None:
    registry = ModelRegistry.load(_write(tmp_path, _doc([OPENAI, ECHO])), environ=environ)
    assert registry.is_available("gpt") is available
    assert registry.default_id == ("gpt" if available else "vektor-echo")


def test_disabled_and_keyless_models(tmp_path: Path) -> None:
    local = {**OPENAI, "id": "local", "api_key_env": None}
    off = {**OPENAI, "id": "off", "enabled": False}
    registry = ModelRegistry.load(
        _write(tmp_path, _doc([off, local], default="off")), environ={"OPENAI_API_KEY": "k"}
    )
    assert registry.is_available("local") and not registry.is_available("off")
    assert registry.default_id == "local"  # first available when default and echo are not
    assert not registry.is_available("missing")


def test_defaults_depend_on_the_provider(tmp_path: Path) -> None:
    registry = ModelRegistry.load(_write(tmp_path, _doc([OPENAI, ECHO])), environ={})
    gpt, echo = registry.get("gpt"), registry.get("vektor-echo")
    assert gpt is not None and echo is not None
    assert (gpt.name, gpt.context_window, gpt.supports_tools, gpt.timeout_s) == (
        "gpt",
        128000,
        False,
        120,
    )
    assert (gpt.max_output_tokens, gpt.temperature, gpt.fallbacks, gpt.enabled) == (
        4096,
        None,
        (),
        True,
    )
    assert (echo.context_window, echo.supports_tools, echo.base_url) == (8192, True, None)


def _mutate(change: str) -> Any:
    """The shipped file with one mistake in it."""
    doc = copy.deepcopy(SHIPPED)
    second = doc["models"][1]
    if change == "provider":
        second["provider"] = "openia"
    elif change == "context_window":
        second["context_window"] = -5
    elif change == "timeout_s":
        second["timeout_s"] = 0
    elif change == "duplicate":
        second["id"] = doc["models"][0]["id"]
    elif change == "fallbacks":
        second["fallbacks"] = ["gpt-5-ultra"]
    elif change == "base_url":
        del second["base_url"]
    elif change == "bad_url":
        second["base_url"] = "api.openai.com"
    elif change == "api_key":
        second["api_key"] = "sk-live-secret-value-123"
    elif change == "key_in_env_field":
        second["api_key_env"] = "sk-live-secret-value-123"
    elif change == "unknown_field":
        second["contxt_window"] = 5
    elif change == "temperature":
        second["temperature"] = 3
    elif change == "default_model":
        doc["default_model"] = "gpt-9"
    elif change == "no_id":
        del second["id"]
    return doc


@pytest.mark.parametrize(
    ("change", "where", "field"),
    [
        ("provider", "'gpt-4o' (models[1])", "'provider'"),
        ("context_window", "'gpt-4o' (models[1])", "'context_window'"),
        ("timeout_s", "'gpt-4o' (models[1])", "'timeout_s'"),
        ("duplicate", "(models[1])", "'id'"),
        ("fallbacks", "'gpt-4o' (models[1])", "'fallbacks'"),
        ("base_url", "'gpt-4o' (models[1])", "'base_url'"),
        ("bad_url", "'gpt-4o' (models[1])", "'base_url'"),
        ("api_key", "'gpt-4o' (models[1])", "'api_key'"),
        ("key_in_env_field", "'gpt-4o' (models[1])", "'api_key_env'"),
        ("unknown_field", "'gpt-4o' (models[1])", "'contxt_window'"),
        ("temperature", "'gpt-4o' (models[1])", "'temperature'"),
        ("default_model", "", "'default_model'"),
        ("no_id", "models[1]", "'id'"),
    ],
)
def test_invalid_file_names_file_model_and_field(
    tmp_path: Path, change: str, where: str, field: str
) -> None:
    with pytest.raises(ModelConfigError) as caught:
        ModelRegistry.load(_write(tmp_path, _mutate(change)), environ={})
    message = str(caught.value)
    assert str(tmp_path / "model_configs.json") in message
    assert where in message and f"field {field}" in message
    assert "secret-value" not in message  # a misplaced key is never echoed


@pytest.mark.parametrize(
    ("content", "hint"), [("{not json", "not valid JSON"), (None, "not found")]
)
def test_unreadable_file_is_named(tmp_path: Path, content: str | None, hint: str) -> None:
    if content is not None:
        _write(tmp_path, content)
    with pytest.raises(ModelConfigError) as caught:
        ModelRegistry.load(tmp_path, environ={})
    assert "model_configs.json" in str(caught.value) and hint in str(caught.value)


async def test_providers_need_start_and_stream_through_pooled_sessions(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    models = [
        {**OPENAI, "base_url": fake.openai_base_url},
        {**OPENAI, "id": "claude", "provider": "anthropic", "base_url": fake.anthropic_base_url},
        ECHO,
    ]
    registry = ModelRegistry.load(_write(tmp_path, _doc(models)), environ={"OPENAI_API_KEY": "k"})
    gpt, claude, echo = (registry.get(i) for i in ("gpt", "claude", "vektor-echo"))
    assert gpt is not None and claude is not None and echo is not None
    assert isinstance(registry.provider_for(echo), EchoProvider)  # no network, no start needed
    with pytest.raises(RuntimeError):
        registry.provider_for(gpt)
    await registry.start()
    try:
        assert isinstance(registry.provider_for(gpt), OpenAIProvider)
        assert isinstance(registry.provider_for(claude), AnthropicProvider)
        fake.script("pooled")
        events, error = await collect(registry.provider_for(gpt), gpt, user("hi"))
        assert error is None and events[0] == TextDelta("pooled")
    finally:
        await registry.aclose()
    with pytest.raises(RuntimeError):
        registry.provider_for(gpt)
