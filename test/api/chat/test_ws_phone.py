"""Issue 16's "done when", as a phone uses it: on one socket two answers run, a tool call is
approved, the other device's edit arrives as `sync.changed`, and after a dropped connection
the still-running answer is re-attached with no lost text."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from test.api.chat.approval_helpers import approval_config
from test.conftest import extra_models
from test.support.apps import REPO_CONFIG, make_settings, served
from test.support.auth import log_in, register_and_login
from test.support.sse import Event, text_of
from test.support.ws import receive, send, signed_in, until_done

pytestmark = pytest.mark.slow
LONG = " ".join(f"word{i}" for i in range(150))  # echo-slow: ~30 ms per word, ~4.5 s
ADD = '/tool test__add {"a": 20, "b": 22}'


class Phone:
    """What one socket has received: events per answer, answers per `ref`, sync cursors."""

    def __init__(self) -> None:
        self.events: dict[str, list[Event]] = defaultdict(list)
        self.refs: dict[str, str] = {}
        self.cursors: list[str] = []

    def answer(self, ref: str) -> list[Event]:
        """The events of the answer started with `ref` so far."""
        return self.events[self.refs[ref]] if ref in self.refs else []

    def ended(self, ref: str) -> bool:
        """Whether that answer sent its last event."""
        return any(e.name in ("done", "error") for e in self.answer(ref))

    async def read(self, ws: Any, until: Callable[[], bool], timeout: float = 30) -> None:
        """Take frames until `until()` holds; an error frame fails the test."""
        async with asyncio.timeout(timeout):
            while not until():
                frame = await receive(ws, timeout)
                if frame["type"] == "event":
                    self.events[frame["message_id"]].append(
                        Event(frame["event"], str(frame["id"]), frame["data"])
                    )
                    if "ref" in frame:
                        self.refs[frame["ref"]] = frame["message_id"]
                elif frame["type"] == "sync.changed":
                    self.cursors.append(frame["cursor"])
                else:
                    assert frame["type"] != "error", frame


async def test_a_phone_runs_two_answers_approves_a_tool_syncs_and_reattaches(
    app: Any, database_url: str, log_dir: Path, fake_llm: Any, tmp_path: Path
) -> None:
    config = approval_config(tmp_path / "config", REPO_CONFIG, extra_models(fake_llm))
    async with served(make_settings(database_url, log_dir, config_dir=config)) as (
        application,
        http,
    ):
        assert await application.state.vektor.mcp.wait_until_ready(30)
        url = str(http.base_url).rstrip("/")
        phone_login = await register_and_login(http, "phone")
        laptop = (await log_in(http, "phone"))["headers"]
        phone = Phone()
        async with signed_in(url, phone_login["access_token"]) as ws:
            await send(ws, {"type": "sync.subscribe"})
            await phone.read(ws, lambda: bool(phone.cursors))
            start = {"type": "chat.start", "model": "echo-slow"}
            await send(ws, {**start, "ref": "long", "message": LONG})
            await send(ws, {**start, "ref": "tool", "message": ADD})

            def asked() -> bool:
                return any(e.name == "tool_approval" for e in phone.answer("tool"))

            await phone.read(ws, asked)
            ask = next(e for e in phone.answer("tool") if e.name == "tool_approval")
            assert (ask.data["server"], ask.data["tool"]) == ("test", "add")
            await send(
                ws,
                {
                    "type": "tool.approve",
                    "message_id": phone.refs["tool"],
                    "call_id": ask.data["call_id"],
                },
            )
            # the other device edits while both answers run
            before = phone.cursors[-1]
            put = await http.put(
                "/users/preferences", json={"system_prompt": "Be brief."}, headers=laptop
            )
            assert put.status_code == 200, put.text
            await phone.read(ws, lambda: phone.ended("tool") and phone.cursors[-1] != before)
            changes = await http.get("/sync/changes", params={"since": before}, headers=laptop)
            assert changes.json()["preferences"]["system_prompt"] == "Be brief."
            tool_answer = phone.answer("tool")
            assert tool_answer[-1].name == "done", tool_answer[-1]
            assert "42" in text_of(tool_answer)
            assert not phone.ended("long")  # still running when the network goes
            long_id, seen = phone.refs["long"], list(phone.answer("long"))
            ws.transport.abort()
        async with signed_in(url, phone_login["access_token"]) as again:
            attach = {"type": "chat.attach", "message_id": long_id}
            await send(again, {**attach, "last_event_id": int(seen[-1].id)})
            rest = (await until_done(again, {long_id}))[long_id]
    assert int(rest[0].id) == int(seen[-1].id) + 1
    assert text_of(seen + rest) == f"Echo: {LONG}"
    assert rest[-1].name == "done"
