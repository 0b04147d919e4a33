"""Fixtures for the OpenAI-compatible API: a user's API key and the official SDK's clients
pointed at the shared app on a real loopback socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from test.api.test_api_keys import create_key


@pytest.fixture
async def api_key(client: httpx.AsyncClient, alice: dict[str, Any]) -> dict[str, Any]:
    """A fresh API key of alice (`key`, `id`, `headers`)."""
    return await create_key(client, alice, name="sdk")


@pytest.fixture
async def aclient(live_url: str, api_key: dict[str, Any]) -> AsyncIterator[openai.AsyncOpenAI]:
    """The async SDK client (no retries: a failure must surface at once)."""
    sdk = openai.AsyncOpenAI(base_url=live_url + "/v1", api_key=api_key["key"], max_retries=0)
    async with sdk:
        yield sdk


@pytest.fixture
def sync_client(live_url: str, api_key: dict[str, Any]) -> openai.OpenAI:
    """The blocking SDK client (call it in a thread: the server shares this event loop)."""
    return openai.OpenAI(base_url=live_url + "/v1", api_key=api_key["key"], max_retries=0)
