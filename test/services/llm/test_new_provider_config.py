"""`openai_responses` and `google` in model_configs.json and in the registry."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.services.llm import ModelConfigError, ModelRegistry, TextDelta
from app.services.llm.google import GoogleProvider
from app.services.llm.openai_responses import OpenAIResponsesProvider
from test.fakes.new_upstreams import NewFakeUpstream, start_new_fake_upstream
from test.services.llm.support import collect, user


@pytest.fixture
async def new_fake() -> AsyncIterator[NewFakeUpstream]:
    """A fresh Responses + Gemini fake per test."""
    async with start_new_fake_upstream() as upstream:
        yield upstream


def _load(tmp_path: Path, models: list[dict[str, Any]], **environ: str) -> ModelRegistry:
    document = {"default_model": models[0]["id"], "models": models}
    (tmp_path / "model_configs.json").write_text(json.dumps(document))
    return ModelRegistry.load(tmp_path, environ=environ)


async def test_both_providers_stream_through_the_started_registry(
    tmp_path: Path, new_fake: NewFakeUpstream
) -> None:
    models = [
        {
            "id": "o3",
            "provider": "openai_responses",
            "model": "o3-mini",
            "base_url": new_fake.responses_base_url,
            "api_key_env": "OPENAI_API_KEY",
            "reasoning": {"effort": "low"},
            "fallbacks": ["gemini"],
        },
        {
            "id": "gemini",
            "provider": "google",
            "model": "gemini-2.5-flash",
            "base_url": new_fake.google_base_url,
            "api_key_env": "GEMINI_API_KEY",
            "reasoning": {"budget_tokens": 4096},
        },
    ]
    registry = _load(tmp_path, models, OPENAI_API_KEY="k1")
    assert registry.is_available("o3") and not registry.is_available("gemini")  # no key yet
    responses, gemini = registry.get("o3"), registry.get("gemini")
    assert responses is not None and gemini is not None
    assert responses.fallbacks == ("gemini",) and gemini.reasoning is not None
    assert gemini.reasoning.budget_tokens == 4096
    with pytest.raises(RuntimeError):
        registry.provider_for(gemini)
    await registry.start()
    try:
        assert isinstance(registry.provider_for(responses), OpenAIResponsesProvider)
        assert isinstance(registry.provider_for(gemini), GoogleProvider)
        new_fake.script("pooled")
        events, error = await collect(registry.provider_for(responses), responses, user("hi"))
        assert error is None and events[0] == TextDelta("pooled")
    finally:
        await registry.aclose()
    with pytest.raises(RuntimeError):
        registry.provider_for(responses)


@pytest.mark.parametrize("provider", ["openai_responses", "google"])
@pytest.mark.parametrize("missing", ["base_url", "model"])
def test_base_url_and_model_are_required(tmp_path: Path, provider: str, missing: str) -> None:
    entry = {"id": "m", "provider": provider, "model": "x", "base_url": "https://h.example/v1"}
    del entry[missing]
    with pytest.raises(ModelConfigError) as raised:
        _load(tmp_path, [entry])
    assert f"model 'm' (models[0]), field '{missing}': required" in str(raised.value)


def test_the_responses_api_takes_an_effort_not_a_budget(tmp_path: Path) -> None:
    entry = {
        "id": "m",
        "provider": "openai_responses",
        "model": "o3",
        "base_url": "https://api.openai.com/v1",
        "reasoning": {"budget_tokens": 2048},
    }
    with pytest.raises(ModelConfigError) as raised:
        _load(tmp_path, [entry])
    assert "field 'reasoning'" in str(raised.value) and "effort" in str(raised.value)


def test_shipped_examples_are_gated_by_their_keys() -> None:
    shipped = Path(__file__).resolve().parents[3] / "config"
    offline = ModelRegistry.load(shipped, environ={})
    assert not offline.is_available("o4-mini") and not offline.is_available("gemini-2.5-flash")
    keyed = ModelRegistry.load(shipped, environ={"OPENAI_API_KEY": "k", "GEMINI_API_KEY": "g"})
    o4, gemini = keyed.get("o4-mini"), keyed.get("gemini-2.5-flash")
    assert o4 is not None and o4.provider == "openai_responses" and o4.reasoning is not None
    assert o4.reasoning.effort == "medium" and o4.base_url == "https://api.openai.com/v1"
    assert gemini is not None and gemini.provider == "google"
    assert gemini.base_url == "https://generativelanguage.googleapis.com/v1beta"
    assert keyed.is_available("o4-mini") and keyed.is_available("gemini-2.5-flash")
