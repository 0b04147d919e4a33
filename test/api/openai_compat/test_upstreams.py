"""Provider failures behind /v1 (the fake OpenAI and Anthropic upstreams): before the answer
starts an HTTP error (5xx → 502, a timeout → 504), after it an error chunk, then the end."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from test.api.chat.helpers import upstream  # noqa: F401  (fixture)
from test.fakes.llm_upstream import Reply
from test.support.assertions import assert_openai_error
from test.support.waiting import eventually

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("model", ["fake-openai", "fake-anthropic"])
async def test_text_streams_from_both_dialects(
    aclient: openai.AsyncOpenAI,
    upstream: Any,  # noqa: F811
    model: str,
) -> None:
    upstream.script(Reply(tokens=["Hello", " from", " upstream"], usage=(7, 3)))
    stream = await aclient.chat.completions.create(
        model=model, messages=HI, stream=True, stream_options={"include_usage": True},
        temperature=0.2, max_completion_tokens=50,
    )  # fmt: skip
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from upstream"
    )
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 3)
    sent = upstream.requests[0].json
    assert sent["temperature"] == 0.2
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 50


@pytest.mark.parametrize("model", ["fake-openai", "fake-anthropic"])
async def test_upstream_5xx_is_502(
    aclient: openai.AsyncOpenAI,
    upstream: Any,  # noqa: F811
    model: str,
) -> None:
    upstream.script(Reply.error(500))
    with pytest.raises(openai.APIStatusError) as caught:
        await aclient.chat.completions.create(model=model, messages=HI, stream=True)
    assert caught.value.status_code == 502
    body: Any = caught.value.body
    assert body["type"] == "api_error" and body["code"].startswith("upstream_")
    assert len(upstream.requests) == 1  # no fallback model on /v1: the client chose this one


async def test_upstream_timeout_is_504(
    live: httpx.AsyncClient,
    api_key: dict[str, Any],
    upstream: Any,  # noqa: F811
) -> None:
    upstream.script(Reply(hang=True))
    response = await live.post(
        "/v1/chat/completions",
        json={"model": "fake-anthropic", "messages": HI},
        headers=api_key["headers"],
    )
    assert_openai_error(response, 504, "upstream_timeout")


async def test_failure_mid_stream_is_an_error_chunk(
    aclient: openai.AsyncOpenAI,
    upstream: Any,  # noqa: F811
) -> None:
    upstream.script(Reply(tokens=["a", "b", "c", "d"], error_after=2))
    stream = await aclient.chat.completions.create(model="fake-openai", messages=HI, stream=True)
    seen: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "ab"
    assert caught.value.code is not None and caught.value.code.startswith("upstream_")


async def test_validation_errors_are_400_in_openai_shape(
    live: httpx.AsyncClient, api_key: dict[str, Any]
) -> None:
    response = await live.post(
        "/v1/chat/completions",
        json={"model": "vektor-echo", "messages": [{"role": "wizard", "content": "hi"}]},
        headers=api_key["headers"],
    )
    error = assert_openai_error(response, 400, "invalid_request")
    assert error["param"].startswith("messages.[0]") and error["type"] == "invalid_request_error"
    response = await live.post(
        "/v1/chat/completions", content=b"{not json", headers=api_key["headers"]
    )
    assert_openai_error(response, 400, "invalid_request")
    response = await live.get("/v1/embeddings", headers=api_key["headers"])
    assert_openai_error(response, 404, "not_found")
    # every other route keeps {detail, code}
    response = await live.post("/chat/stream", json={}, headers=api_key["headers"])
    assert response.status_code == 422 and response.json()["code"] == "validation_error"


async def test_images_and_unsupported_parts(
    aclient: openai.AsyncOpenAI, live: httpx.AsyncClient, api_key: dict[str, Any]
) -> None:
    png = (
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
        "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    )
    answer = await aclient.chat.completions.create(
        model="vektor-echo",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": png}},
                ],
            }
        ],
    )
    assert answer.choices[0].message.content == "Echo: what is this Attachments: image image 1x1"
    with pytest.raises(openai.BadRequestError) as caught:
        await aclient.chat.completions.create(
            model="echo-blind",
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": png}}]}
            ],
        )
    assert caught.value.code == "model_cannot_see_images"
    response = await live.post(
        "/v1/chat/completions",
        json={
            "model": "vektor-echo",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
                    ],
                }
            ],
        },
        headers=api_key["headers"],
    )
    assert_openai_error(response, 400, "unsupported_image_url")
    response = await live.post(
        "/v1/chat/completions",
        json={
            "model": "vektor-echo",
            "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
            "frequency_penalty": 0.5,  # ignored on purpose
        },
        headers=api_key["headers"],
    )
    assert_openai_error(response, 400, "invalid_request")


async def test_a_client_that_leaves_ends_the_upstream_request(
    live: httpx.AsyncClient,
    api_key: dict[str, Any],
    upstream: Any,  # noqa: F811
) -> None:
    upstream.script(Reply(tokens=[f" w{i}" for i in range(200)], token_delay=0.05))
    before, played = upstream.disconnects, upstream.completed
    body = {"model": "fake-openai", "messages": HI, "stream": True}
    async with live.stream(
        "POST", "/v1/chat/completions", json=body, headers=api_key["headers"]
    ) as response:
        async for line in response.aiter_lines():
            if '"content":" w1"' in line:
                break

    async def upstream_left() -> bool:
        return bool(upstream.disconnects > before)

    await eventually(upstream_left, what="the upstream request cancelled")
    assert upstream.completed == played  # cut off, not played to its end


@pytest.mark.parametrize("model", ["fake-openai", "fake-anthropic"])
async def test_sampling_options_reach_the_upstream(
    aclient: openai.AsyncOpenAI,
    upstream: Any,  # noqa: F811
    model: str,
) -> None:
    upstream.script("{}")
    await aclient.chat.completions.create(
        model=model, messages=HI, top_p=0.5, stop=["END"], seed=7,
        response_format={"type": "json_object"},
    )  # fmt: skip
    sent = upstream.requests[0].json
    if model == "fake-openai":
        assert (sent["top_p"], sent["stop"], sent["seed"]) == (0.5, ["END"], 7)
        assert sent["response_format"] == {"type": "json_object"}
    else:  # Anthropic's API has no seed and no response format
        assert (sent["top_p"], sent["stop_sequences"]) == (0.5, ["END"])
        assert "seed" not in sent and "response_format" not in sent
