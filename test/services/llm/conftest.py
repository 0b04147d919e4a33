"""Fixtures for the provider tests: a fake upstream and providers wired to it (no app, no DB)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from app.services.llm import ModelConfig, Provider
from app.services.llm.anthropic import AnthropicProvider
from app.services.llm.openai import OpenAIProvider
from test.fakes.llm_upstream import FakeUpstream, start_fake_upstream
from test.services.llm.support import API_KEY, KEY_ENV, model_for


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    """A fresh loopback fake upstream per test."""
    async with start_fake_upstream() as upstream:
        yield upstream


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A pooled client session, like the one the registry opens in the lifespan."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def environ() -> dict[str, str]:
    """The environment the providers read their key from."""
    return {KEY_ENV: API_KEY}


def make_provider(kind: str, http: aiohttp.ClientSession, environ: dict[str, str]) -> Provider:
    """The provider class for `kind` over `http`."""
    cls = OpenAIProvider if kind == "openai" else AnthropicProvider
    return cls(session=http, environ=environ)


def base_url_for(kind: str, fake: FakeUpstream) -> str:
    """The base URL a `kind` model config would use for the fake."""
    return fake.openai_base_url if kind == "openai" else fake.anthropic_base_url


@pytest.fixture(params=["openai", "anthropic"])
def kind(request: pytest.FixtureRequest) -> str:
    """Run the test against both upstream dialects."""
    value: str = request.param
    return value


@pytest.fixture
def provider(kind: str, http: aiohttp.ClientSession, environ: dict[str, str]) -> Provider:
    """The provider of the current dialect."""
    return make_provider(kind, http, environ)


@pytest.fixture
def model(kind: str, fake: FakeUpstream) -> ModelConfig:
    """A model config of the current dialect pointing at the fake."""
    return model_for(kind, base_url_for(kind, fake))
