"""Chat turns through `openai_responses` and `google` models on loopback upstreams.

The session's shared app knows only the shipped models and the OpenAI/Anthropic fakes, so
these tests start an instance of their own (same database, emptied by `instance_paths`)
whose model file adds a Responses API and a Gemini model pointing at the new fake.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from app.api import deps
from app.services.tools import Toolbox
from test.api.chat.stubs import StubTools
from test.api.files.helpers import upload
from test.fakes.new_upstreams import FakeToolCall, NewFakeUpstream, Reply, start_new_fake_upstream
from test.support.apps import make_settings, served
from test.support.auth import register_and_login
from test.support.files import image
from test.support.sse import names, stream_chat, text_of

RESPONSES_KEY = "sk-test-responses-" + "r" * 24
GEMINI_KEY = "AIzaTestGeminiKey-" + "g" * 24
MODEL_IDS = {"openai_responses": "fake-responses", "google": "fake-gemini"}


def _models(fake: NewFakeUpstream) -> list[dict[str, Any]]:
    """The two new providers, each the other's fallback."""
    common = {
        "supports_tools": True,
        "supports_vision": True,
        "timeout_s": 5,
        "max_output_tokens": 500,
    }
    return [
        {
            "id": "fake-responses",
            "provider": "openai_responses",
            "model": "o4-fake",
            "base_url": fake.responses_base_url,
            "api_key_env": "VEKTOR_TEST_RESPONSES_KEY",
            "reasoning": {"effort": "low"},
            "fallbacks": ["fake-gemini"],
            **common,
        },
        {
            "id": "fake-gemini",
            "provider": "google",
            "model": "gemini-3-fake",
            "base_url": fake.google_base_url,
            "api_key_env": "VEKTOR_TEST_GEMINI_KEY",
            "reasoning": {"budget_tokens": 1024},
            "fallbacks": ["fake-responses"],
            **common,
        },
    ]


@pytest.fixture
async def instance(
    instance_paths: tuple[str, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, NewFakeUpstream, StubTools, Path]]:
    """An app instance with both new models and the stub tools; its client, fake, tools, logs."""
    database_url, log_dir, config_dir = instance_paths
    monkeypatch.setenv("VEKTOR_TEST_RESPONSES_KEY", RESPONSES_KEY)
    monkeypatch.setenv("VEKTOR_TEST_GEMINI_KEY", GEMINI_KEY)
    async with start_new_fake_upstream() as fake:
        models = json.loads((config_dir / "model_configs.json").read_text())
        models["models"] += _models(fake)
        (tmp_path / "model_configs.json").write_text(json.dumps(models))
        (tmp_path / "mcp_servers.json").write_text(json.dumps({"servers": {}}))
        settings = make_settings(database_url, log_dir, config_dir=tmp_path)
        async with served(settings) as (application, client):
            stub = StubTools(delay=0.01)
            application.dependency_overrides[deps.get_tools] = lambda: Toolbox([stub])
            yield client, fake, stub, log_dir


@pytest.mark.parametrize("kind", ["openai_responses", "google"])
async def test_a_turn_streams_text_keeps_reasoning_apart_and_reports_usage(
    instance: tuple[httpx.AsyncClient, NewFakeUpstream, StubTools, Path], kind: str
) -> None:
    client, fake, _, _ = instance
    user = await register_and_login(client, "rita")
    fake.script(Reply(reasoning=["Greeting ", "back."], tokens=["Hi ", "Rita."], usage=(9, 6)))
    events = await stream_chat(
        client, user["headers"], message="Hello!", model=MODEL_IDS[kind], system_prompt="Short."
    )
    assert names(events)[0] == "start" and names(events)[-1] == "done"
    assert events[-1].data["finish_reason"] == "stop"
    assert text_of(events) == "Hi Rita."  # the reasoning never mixes into the text
    # `reasoning` events come with the agent's support for them (issue 12, same release)
    reasoning = "".join(e.data["content"] for e in events if e.name == "reasoning")
    assert reasoning in ("", "Greeting back.")
    usage = next(e for e in events if e.name == "usage").data
    assert (usage["input_tokens"], usage["output_tokens"]) == (9, 6)
    [sent] = fake.requests
    if kind == "google":
        assert sent.json["systemInstruction"] == {"parts": [{"text": "Short."}]}
        assert sent.json["contents"][-1] == {"role": "user", "parts": [{"text": "Hello!"}]}
        assert sent.headers["x-goog-api-key"] == GEMINI_KEY
    else:
        assert sent.json["instructions"] == "Short."
        assert sent.json["input"][-1] == {"role": "user", "content": "Hello!"}
        assert sent.json["reasoning"] == {"effort": "low", "summary": "auto"}
    conversation = await client.get(
        f"/chat/history/{events[0].data['conversation_id']}", headers=user["headers"]
    )
    assert conversation.json()["messages"][-1]["content"] == "Hi Rita."


@pytest.mark.parametrize("kind", ["openai_responses", "google"])
async def test_a_tool_round_trip_is_run_and_sent_back_in_the_dialect(
    instance: tuple[httpx.AsyncClient, NewFakeUpstream, StubTools, Path], kind: str
) -> None:
    client, fake, stub, _ = instance
    user = await register_and_login(client, "tom")
    fake.script(
        Reply(tool_calls=[FakeToolCall("stub__add", {"a": 2, "b": 3}, id="call_1")]),
        Reply.text("The sum is 5."),
    )
    events = await stream_chat(client, user["headers"], message="2+3?", model=MODEL_IDS[kind])
    order = names(events)
    assert order.index("tool_call") < order.index("tool_result") and order[-1] == "done"
    call = next(e for e in events if e.name == "tool_call").data
    assert (call["server"], call["tool"], call["arguments"]) == ("stub", "add", {"a": 2, "b": 3})
    result = next(e for e in events if e.name == "tool_result").data
    assert result["status"] == "ok" and result["content"] == "5"
    assert text_of(events) == "The sum is 5." and stub.calls
    second = fake.requests[1].json
    if kind == "google":
        assert second["contents"][-1] == {
            "role": "user",
            "parts": [{"functionResponse": {"name": "stub__add", "response": {"result": "5"}}}],
        }
        replayed = second["contents"][-2]["parts"][0]
        assert replayed["functionCall"] == {"name": "stub__add", "args": {"a": 2, "b": 3}}
        # the fake sent no signature: Gemini 3 gets the validator-skip value
        assert replayed["thoughtSignature"] == "skip_thought_signature_validator"
    else:
        assert second["input"][-1] == {
            "type": "function_call_output",
            "call_id": "call_1",
            "output": "5",
        }
        assert second["input"][-2]["type"] == "function_call"


async def test_a_failing_model_falls_back_and_no_key_reaches_url_or_logs(
    instance: tuple[httpx.AsyncClient, NewFakeUpstream, StubTools, Path],
) -> None:
    client, fake, _, log_dir = instance
    user = await register_and_login(client, "una")
    fake.script(Reply.error(401, f"bad key {RESPONSES_KEY}"), Reply.text("Gemini here."))
    events = await stream_chat(client, user["headers"], message="hi", model="fake-responses")
    assert next(e for e in events if e.name == "model").data["model"] == "fake-gemini"
    assert text_of(events) == "Gemini here." and names(events)[-1] == "done"
    fake.script(Reply.error(429, f"slow down {GEMINI_KEY}"), Reply.error(500, "down too"))
    events = await stream_chat(client, user["headers"], message="again", model="fake-gemini")
    error = next(e for e in events if e.name == "error").data
    assert error["code"] == "upstream_unavailable"  # the last candidate's failure
    assert [r.api for r in fake.requests] == [
        "openai_responses",
        "google",
        "google",
        "openai_responses",
    ]
    assert all(GEMINI_KEY not in r.path + getattr(r, "query", "") for r in fake.requests)
    logged = "".join(path.read_text(errors="replace") for path in log_dir.glob("*.log*"))
    assert "fake-responses" in logged  # the logs were written, without either key
    assert RESPONSES_KEY not in logged and GEMINI_KEY not in logged


@pytest.mark.parametrize("kind", ["openai_responses", "google"])
async def test_attachments_go_as_image_parts_and_text_in_the_dialect(
    instance: tuple[httpx.AsyncClient, NewFakeUpstream, StubTools, Path], kind: str
) -> None:
    client, fake, _, _ = instance
    user = await register_and_login(client, "vera")
    photo = (await upload(client, user, "wide.png", image("PNG", (4000, 1000)))).json()
    notes = (await upload(client, user, "notes.txt", b"Blue is the answer.\n")).json()
    fake.script(Reply.text("Seen."))
    events = await stream_chat(
        client,
        user["headers"],
        message="Look",
        model=MODEL_IDS[kind],
        attachments=[photo["id"], notes["id"]],
    )
    assert text_of(events) == "Seen."
    [sent] = fake.requests
    if kind == "google":
        parts = sent.json["contents"][-1]["parts"]
        assert parts[0] == {"text": "Look"}
        inline = parts[1]["inline_data"]
        assert inline["mime_type"] == "image/jpeg"
        data, side = inline["data"], 3072
        assert "Blue is the answer." in parts[2]["text"]
    else:
        content = sent.json["input"][-1]["content"]
        assert content[0] == {"type": "input_text", "text": "Look"}
        assert content[1]["type"] == "input_image"
        data, side = content[1]["image_url"].split(",", 1)[1], 2048
        assert content[2]["type"] == "input_text" and "Blue is the answer." in content[2]["text"]
    assert Image.open(io.BytesIO(base64.b64decode(data))).size == (side, side // 4)
