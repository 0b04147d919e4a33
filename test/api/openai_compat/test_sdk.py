"""The official `openai` SDK against a live server: models, completions (sync and async,
streamed and not), the usage chunk, and errors raised as the SDK's own classes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest

from app.state import AppState

ECHO = "vektor-echo"


async def test_models_lists_only_available_ones(
    aclient: openai.AsyncOpenAI, state: AppState
) -> None:
    page = await aclient.models.list()
    ids = [model.id for model in page.data]
    assert ECHO in ids and "fake-openai" in ids
    assert "fake-nokey" not in ids  # its key variable is unset: not available
    assert ids == [m.id for m in state.models.list() if state.models.is_available(m.id)]
    owners = {model.id: model.owned_by for model in page.data}
    assert owners[ECHO] == "echo" and owners["fake-anthropic"] == "anthropic"
    assert all(model.object == "model" and model.created > 0 for model in page.data)


async def test_async_completion_whole(aclient: openai.AsyncOpenAI) -> None:
    answer = await aclient.chat.completions.create(
        model=ECHO, messages=[{"role": "user", "content": "hello there"}]
    )
    assert answer.object == "chat.completion"
    assert answer.id.startswith("chatcmpl-")
    assert answer.model == ECHO
    choice = answer.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Echo: hello there"
    assert choice.finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 3
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 3


async def test_async_stream_with_usage_chunk(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(
        model=ECHO,
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "one two"}]},
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == 3
    assert {c.id for c in chunks} == {chunks[0].id}


def _sync_calls(sdk: openai.OpenAI) -> tuple[str, str]:
    whole = sdk.chat.completions.create(
        model=ECHO, messages=[{"role": "user", "content": "sync call"}]
    )
    streamed = sdk.chat.completions.create(
        model=ECHO, messages=[{"role": "user", "content": "sync stream"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    return whole.choices[0].message.content or "", text


async def test_sync_client_whole_and_streamed(sync_client: openai.OpenAI) -> None:
    whole, streamed = await asyncio.to_thread(_sync_calls, sync_client)
    assert whole == "Echo: sync call"
    assert streamed == "Echo: sync stream"


async def test_unknown_model_is_not_found(aclient: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await aclient.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "model_not_found"
    body: Any = caught.value.body
    assert body["type"] == "not_found_error"


async def test_bad_requests_are_bad_request_errors(aclient: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await aclient.chat.completions.create(model=ECHO, messages=[])
    assert caught.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as caught:
        await aclient.chat.completions.create(
            model=ECHO, messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert caught.value.param == "n"
    with pytest.raises(openai.BadRequestError):
        await aclient.chat.completions.create(
            model=ECHO, messages=[{"role": "user", "content": "hi"}], logprobs=True
        )


async def test_revoked_key_fails_on_the_next_request(
    aclient: openai.AsyncOpenAI, client: httpx.AsyncClient, alice: dict[str, Any],
    api_key: dict[str, Any],
) -> None:  # fmt: skip
    await aclient.models.list()
    deleted = await client.delete(f"/users/me/api-keys/{api_key['id']}", headers=alice["headers"])
    assert deleted.status_code == 204
    with pytest.raises(openai.AuthenticationError) as caught:
        await aclient.chat.completions.create(
            model=ECHO, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 401
    body: Any = caught.value.body
    assert body["type"] == "authentication_error"


async def test_missing_key_is_openai_shaped(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url) as raw:
        response = await raw.get("/v1/models")
    assert response.status_code == 401
    assert set(response.json()) == {"error"}
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_session_token_works_too(live_url: str, alice: dict[str, Any]) -> None:
    token = alice["headers"]["Authorization"].removeprefix("Bearer ")
    async with openai.AsyncOpenAI(base_url=live_url + "/v1", api_key=token, max_retries=0) as sdk:
        answer = await sdk.chat.completions.create(
            model=ECHO, messages=[{"role": "user", "content": "from the app"}]
        )
    assert answer.choices[0].message.content == "Echo: from the app"


@pytest.mark.parametrize("key", ["vk-" + "x" * 51, "not-a-key"])
async def test_a_bad_key_is_an_authentication_error(live_url: str, key: str) -> None:
    async with openai.AsyncOpenAI(base_url=live_url + "/v1", api_key=key, max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError) as caught:
            await sdk.models.list()
    assert caught.value.code == "invalid_token"
