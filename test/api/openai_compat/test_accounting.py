"""Stateless /v1 answers count like chat answers: in GET /users/me/usage, in the quota
counters (429 `quota_exceeded` as the SDK's RateLimitError) and under RATE_LIMIT_API_KEY."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from asgi_lifespan import LifespanManager

from app.db.base import utcnow
from app.main import create_app
from app.services.usage.windows import day_of
from app.state import AppState
from test.api.test_api_keys import create_key
from test.api.usage.test_quota import _set_quota, _settled
from test.support.apps import make_settings, serve_app
from test.support.auth import register_and_login
from test.support.waiting import eventually

HI = [{"role": "user", "content": "one two three"}]


async def test_usage_report_counts_stateless_answers(
    aclient: openai.AsyncOpenAI, client: httpx.AsyncClient, alice: dict[str, Any]
) -> None:
    whole = await aclient.chat.completions.create(model="echo-priced", messages=HI)
    stream = await aclient.chat.completions.create(model="echo-priced", messages=HI, stream=True)
    async for _ in stream:
        pass
    assert whole.usage is not None
    used = whole.usage.prompt_tokens, whole.usage.completion_tokens

    async def reported() -> bool:
        response = await client.get(
            "/users/me/usage", params={"group_by": "model"}, headers=alice["headers"]
        )
        items = {item["key"]: item for item in response.json()["items"]}
        return items.get("echo-priced", {}).get("messages") == 2

    await eventually(reported, what="two /v1 answers in the usage report")
    response = await client.get(
        "/users/me/usage", params={"group_by": "model"}, headers=alice["headers"]
    )
    (item,) = response.json()["items"]
    assert (item["input_tokens"], item["output_tokens"]) == (2 * used[0], 2 * used[1])
    assert item["cost_usd"] > 0  # echo-priced has prices
    assert response.json()["totals"]["messages"] == 2


async def test_quota_is_reserved_and_settled(
    aclient: openai.AsyncOpenAI, alice: dict[str, Any], state: AppState
) -> None:
    user_id = alice["user"]["id"]
    await _set_quota(state, user_id, quota_tokens_per_day=10_000)
    answer = await aclient.chat.completions.create(model="vektor-echo", messages=HI)
    assert answer.usage is not None
    await _settled(state, user_id, day_of(utcnow()).key, answer.usage.total_tokens)
    await _set_quota(state, user_id, quota_tokens_per_day=answer.usage.total_tokens)
    with pytest.raises(openai.RateLimitError) as caught:
        await aclient.chat.completions.create(model="vektor-echo", messages=HI, stream=True)
    assert caught.value.code == "quota_exceeded"
    assert int(caught.value.response.headers["retry-after"]) >= 1


@pytest.fixture
async def limited(
    app: Any, database_url: str, log_dir: Path, config_dir: Path
) -> AsyncIterator[str]:
    """An app allowing two /v1 requests a minute per key, on a real socket."""
    settings = make_settings(
        database_url, log_dir, config_dir=config_dir, rate_limit_api_key="2/minute"
    )
    application = create_app(settings)
    async with LifespanManager(application), serve_app(application) as url:
        yield url


async def test_rate_limit_is_per_key(limited: str) -> None:
    async with httpx.AsyncClient(base_url=limited, timeout=30) as http:
        alice = await register_and_login(http, "alice")
        keys = [await create_key(http, alice, name=f"k{i}") for i in range(2)]
    first, second = (
        openai.AsyncOpenAI(base_url=limited + "/v1", api_key=k["key"], max_retries=0) for k in keys
    )
    for _ in range(2):
        await first.chat.completions.create(model="vektor-echo", messages=HI)
    with pytest.raises(openai.RateLimitError) as caught:
        await first.chat.completions.create(model="vektor-echo", messages=HI)
    assert caught.value.code == "rate_limited"
    assert int(caught.value.response.headers["retry-after"]) >= 1
    body: Any = caught.value.body
    assert body["type"] == "rate_limit_error"
    answer = await second.chat.completions.create(model="vektor-echo", messages=HI)
    assert answer.choices[0].message.content == "Echo: one two three"
    await first.close()
    await second.close()
