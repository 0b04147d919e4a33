"""A `vektor.mcp` answer on /v1 pauses for a tool that needs approval exactly as an app's
answer does: the OpenAI client's stream waits, the app sees `awaiting_approval` in the
stored exchange, and a decision from another device lets the answer finish."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import pytest

from test.api.chat.approval_helpers import approval_config, decision_path
from test.api.test_api_keys import create_key
from test.conftest import extra_models
from test.support.apps import REPO_CONFIG, make_settings, served
from test.support.auth import register_and_login
from test.support.waiting import eventually

pytestmark = pytest.mark.slow
ADD = '/tool test__add {"a": 20, "b": 22}'


async def _paused_call(http: Any) -> tuple[str, str]:
    """The answer's id and its waiting call's id, once the stored answer shows the pause."""
    answer: dict[str, Any] = {}

    async def paused() -> bool:
        nonlocal answer
        items = (await http.get("/chat/history")).json()["items"]
        if not items:
            return False
        read = (await http.get(f"/chat/history/{items[0]['id']}")).json()
        answer = read["messages"][-1]
        return bool(answer["status"] == "awaiting_approval")

    await eventually(paused, timeout_s=20, what="the stored answer awaiting approval")
    (call,) = answer["tool_calls"]
    assert call["status"] == "awaiting_approval"
    return answer["id"], call["id"]


@pytest.mark.parametrize("decision", ["approve", "deny"])
async def test_a_v1_mcp_answer_waits_for_the_users_decision(
    app: Any, database_url: str, log_dir: Path, fake_llm: Any, tmp_path: Path, decision: str
) -> None:
    config = approval_config(tmp_path / "config", REPO_CONFIG, extra_models(fake_llm))
    settings = make_settings(database_url, log_dir, config_dir=config)
    async with served(settings) as (application, http):
        assert await application.state.vektor.mcp.wait_until_ready(30)
        alice = await register_and_login(http, "v1ask")
        key = (await create_key(http, alice))["key"]
        http.headers.update(alice["headers"])
        base = str(http.base_url).rstrip("/") + "/v1"
        async with openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0) as sdk:
            # the SDK returns once the first text arrives, which is after the decision
            reading = asyncio.create_task(_answer(sdk))
            message_id, call_id = await _paused_call(http)
            assert not reading.done()  # the client's stream waits for the decision
            decided = await http.post(decision_path(message_id, call_id, decision), json={})
            assert decided.status_code == 202, decided.text
            text = await asyncio.wait_for(reading, 30)
    if decision == "approve":
        assert text.startswith("Tool test__add returned: ") and "42" in text
    else:
        assert "42" not in text and "denied" in text.lower()


async def _answer(sdk: openai.AsyncOpenAI) -> str:
    """Ask for the tool through the server's MCP pool; the streamed answer's text."""
    stream = await sdk.chat.completions.create(
        model="vektor-echo",
        messages=[{"role": "user", "content": ADD}],
        stream=True,
        extra_body={"vektor": {"mcp": True}},
    )
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
