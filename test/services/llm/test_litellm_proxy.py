"""End to end through a real third-party server: LiteLLM's proxy between the OpenAI-compatible
provider and the fake Anthropic upstream.

LiteLLM reads the fake's thinking stream with its own Anthropic client and re-sends it as
Chat Completions chunks with `reasoning_content`, so one run checks both sides against an
independent implementation: the fake speaks Anthropic's thinking format (deltas, signature)
well enough for a real client, and our reader understands what a real proxy sends. (The
proxy's `mock_response` cannot stand in for this: it streams only `content`.)

LiteLLM is not a project dependency: install it anywhere (e.g. `uv venv /tmp/litellm &&
uv pip install --python /tmp/litellm/bin/python 'litellm[proxy]'`) and point `LITELLM_BIN`
at its `litellm` script (or put it on PATH); without it the test is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
import pytest

from app.services.llm import ReasoningDelta, TextDelta
from app.services.llm.base import ReasoningConfig
from app.services.llm.openai import OpenAIProvider
from test.fakes.llm_upstream import FakeUpstream, Reply
from test.services.llm.support import KEY_ENV, collect, model_for, user
from test.support.net import free_port

LITELLM = os.environ.get("LITELLM_BIN") or shutil.which("litellm")
MASTER_KEY = "sk-vektor-test-" + "m" * 24
START_TIMEOUT_S = 120

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not LITELLM, reason="LiteLLM's proxy is not installed (LITELLM_BIN)"),
]


@contextlib.asynccontextmanager
async def litellm_proxy(upstream_url: str, directory: Path) -> AsyncIterator[str]:
    """LiteLLM's proxy serving `claude-thinking` from the fake upstream; its /v1 base URL."""
    config = directory / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: claude-thinking\n"
        "    litellm_params:\n"
        "      model: anthropic/claude-sonnet-4-20250514\n"
        f"      api_base: {upstream_url}\n"
        "      api_key: sk-ant-fake\n"
    )
    port = free_port()
    env = {**os.environ, "LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    log = (directory / "litellm.log").open("wb")
    assert LITELLM is not None
    proc = await asyncio.create_subprocess_exec(
        LITELLM, "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
        env=env, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client, asyncio.timeout(START_TIMEOUT_S):
            while True:
                assert proc.returncode is None, (directory / "litellm.log").read_text()[-3000:]
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(base + "/health/liveliness")).status_code == 200:
                        break
                await asyncio.sleep(0.3)
        yield base + "/v1"
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        log.close()


async def test_anthropic_thinking_through_litellm_arrives_as_reasoning(
    fake: FakeUpstream, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    fake.script(Reply.text("The answer is 42.", reasoning=["Let me ", "work it out."]))
    async with litellm_proxy(fake.anthropic_base_url, tmp_path) as base_url:
        provider = OpenAIProvider(session=http, environ={KEY_ENV: MASTER_KEY})
        model = model_for(
            "openai", base_url, model="claude-thinking", reasoning=ReasoningConfig(effort="low")
        )
        events, error = await collect(provider, model, user("6 x 7?"))
    assert error is None, error
    reasoning = "".join(e.content for e in events if isinstance(e, ReasoningDelta))
    answer = "".join(e.content for e in events if isinstance(e, TextDelta))
    assert reasoning == "Let me work it out." and answer == "The answer is 42."
    [request] = fake.requests
    assert request.api == "anthropic"
    assert request.json["thinking"]["type"] == "enabled"  # LiteLLM's reading of the effort
