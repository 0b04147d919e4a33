"""Tool approval over SSE + HTTP on the shared app: approve, deny, decide once, 404 for
others, several calls of one round decided one by one, what history and status show."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from test.api.chat.approval_helpers import AskingTools, decision_path, read_until
from test.api.chat.helpers import tools_of
from test.fakes.llm_upstream import FakeToolCall, Reply
from test.support.assertions import assert_error
from test.support.auth import log_in
from test.support.sse import Event, names, read_events


@pytest.fixture
def asking(app: Any) -> Iterator[AskingTools]:
    """Chat's tools are `ask__add` (waits for approval) and `ask__fail` (does not)."""
    stub = AskingTools(delay=0.05)
    with tools_of(app, stub):
        yield stub


def _tool(name: str, **arguments: Any) -> str:
    return f"/tool {name} {json.dumps(arguments)}"


async def _history(client: httpx.AsyncClient, headers: dict, conversation_id: str) -> dict:
    response = await client.get(f"/chat/history/{conversation_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["messages"][-1]


async def _saved(client: httpx.AsyncClient, headers: dict, conversation_id: str) -> dict:
    """The answer once it is saved with a final status."""
    for _ in range(200):
        message = await _history(client, headers, conversation_id)
        if message["status"] not in ("streaming", "awaiting_approval"):
            return message
        await asyncio.sleep(0.05)
    raise AssertionError("the answer was never saved")


async def test_approved_call_runs_and_history_shows_the_pause(
    live: httpx.AsyncClient, alice: dict, asking: AskingTools
) -> None:
    h = alice["headers"]
    body = {"message": _tool("ask__add", a=2, b=3)}
    async with aconnect_sse(live, "POST", "/chat/stream", json=body, headers=h) as source:
        events = await read_until(source, "tool_approval")
        asked = events[-1].data
        assert (asked["server"], asked["tool"], asked["arguments"]) == (
            "ask",
            "add",
            {"a": 2, "b": 3},
        )
        assert asked["call_id"] and asked["expires_at"]
        assert asking.calls == []  # not run before the user says so
        start = events[0].data
        paused = await _history(live, h, start["conversation_id"])
        assert paused["status"] == "awaiting_approval"
        assert paused["tool_calls"][0]["status"] == "awaiting_approval"
        assert paused["tool_calls"][0]["expires_at"]
        status = (await live.get("/api/status")).json()
        assert status["worker"]["awaiting_approval"] == 1

        path = decision_path(start["message_id"], asked["call_id"], "approve")
        assert (await live.post(path, headers=h)).status_code == 202
        events += await read_events(source)
    after = [n for n in names(events) if n != "tool_progress"]
    after = after[after.index("tool_approval") :]
    assert after[:3] == ["tool_approval", "tool_approval_decided", "tool_result"]
    assert events[-1].name == "done"
    decided = next(e.data for e in events if e.name == "tool_approval_decided")
    assert decided == {"call_id": asked["call_id"], "decision": "approved", "reason": None}
    result = next(e.data for e in events if e.name == "tool_result")
    assert result["status"] == "ok" and result["content"] == "5"
    assert asking.calls == [("stub__add", {"a": 2, "b": 3})]
    saved = await _saved(live, h, start["conversation_id"])
    assert saved["status"] == "complete" and saved["tool_calls"][0]["status"] == "ok"
    assert (await live.get("/api/status")).json()["worker"]["awaiting_approval"] == 0
    again = await live.post(path.replace("/approve", "/deny"), headers=h)
    assert_error(again, 409, "already_decided")


async def test_denial_reaches_the_model_as_an_error_result(
    live: httpx.AsyncClient, alice: dict, asking: AskingTools, upstream: Any
) -> None:
    h = alice["headers"]
    upstream.script(
        Reply(tool_calls=[FakeToolCall("ask__add", {"a": 1, "b": 1}, id="call_d")]),
        Reply.text("Fine, I will not add."),
    )
    body = {"message": "add", "model": "fake-openai"}
    async with aconnect_sse(live, "POST", "/chat/stream", json=body, headers=h) as source:
        events = await read_until(source, "tool_approval")
        message_id = events[0].data["message_id"]
        denied = await live.post(
            decision_path(message_id, "call_d", "deny"),
            headers=h,
            json={"reason": "not today"},
        )
        assert denied.status_code == 202
        events += await read_events(source)
    result = next(e.data for e in events if e.name == "tool_result")
    assert result["status"] == "error" and "denied" in result["content"]
    assert events[-1].name == "done" and events[-1].data["finish_reason"] == "stop"
    assert asking.calls == []
    tool_message = upstream.requests[-1].json["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_d"
    assert "denied" in tool_message["content"] and "not today" in tool_message["content"]
    saved = await _saved(live, h, events[0].data["conversation_id"])
    assert saved["content"] == "Fine, I will not add."


async def test_unknown_or_foreign_calls_are_404_and_two_devices_race(
    live: httpx.AsyncClient, alice: dict, bob: dict, asking: AskingTools
) -> None:
    h = alice["headers"]
    phone = (await log_in(live, "alice"))["headers"]
    body = {"message": _tool("ask__add", a=1, b=2)}
    async with aconnect_sse(live, "POST", "/chat/stream", json=body, headers=h) as source:
        events = await read_until(source, "tool_approval")
        message_id, call_id = events[0].data["message_id"], events[-1].data["call_id"]
        for verb in ("approve", "deny"):
            foreign = await live.post(
                decision_path(message_id, call_id, verb), headers=bob["headers"]
            )
            assert_error(foreign, 404, "not_found")
        unknown = await live.post(decision_path(message_id, "nope", "approve"), headers=h)
        assert_error(unknown, 404, "not_found")
        stranger = "00000000-0000-4000-8000-000000000000"
        assert_error(
            await live.post(decision_path(stranger, call_id, "approve"), headers=h),
            404,
            "not_found",
        )
        # the laptop approves while the phone denies: exactly one wins
        answers = await asyncio.gather(
            live.post(decision_path(message_id, call_id, "approve"), headers=h),
            live.post(decision_path(message_id, call_id, "deny"), headers=phone),
        )
        assert sorted(r.status_code for r in answers) == [202, 409]
        loser = next(r for r in answers if r.status_code == 409)
        assert_error(loser, 409, "already_decided")
        events += await read_events(source)
    won = "approved" if answers[0].status_code == 202 else "denied"
    decided = [e.data["decision"] for e in events if e.name == "tool_approval_decided"]
    assert decided == [won]
    assert len(asking.calls) == (1 if won == "approved" else 0)


async def test_calls_of_one_round_are_decided_one_by_one(
    live: httpx.AsyncClient, alice: dict, asking: AskingTools
) -> None:
    h = alice["headers"]
    calls = [
        {"name": "ask__add", "arguments": {"a": 1, "b": 1}},
        {"name": "ask__add", "arguments": {"a": 2, "b": 2}},
        {"name": "ask__fail", "arguments": {"a": 0, "b": 0}},
    ]
    body = {"message": f"/tools {json.dumps(calls)}"}
    async with aconnect_sse(live, "POST", "/chat/stream", json=body, headers=h) as source:
        events: list[Event] = []
        # both calls ask, the one that needs no approval runs meanwhile (in either order)
        while names(events).count("tool_approval") < 2 or "tool_result" not in names(events):
            events += await read_events(source, 1)
        assert asking.calls == [("stub__fail", {"a": 0, "b": 0})]
        message_id = events[0].data["message_id"]
        first, second = [e.data["call_id"] for e in events if e.name == "tool_approval"]
        assert (
            await live.post(decision_path(message_id, first, "approve"), headers=h)
        ).status_code == 202
        await read_until(source, "tool_result", events)
        assert events[-1].data["call_id"] == first and events[-1].data["content"] == "2"
        still = await _history(live, h, events[0].data["conversation_id"])
        assert still["status"] == "awaiting_approval"  # the second call still waits
        assert (
            await live.post(decision_path(message_id, second, "deny"), headers=h)
        ).status_code == 202
        events += await read_events(source)
    results = {e.data["call_id"]: e.data["status"] for e in events if e.name == "tool_result"}
    assert results[first] == "ok" and results[second] == "error"
    assert events[-1].name == "done"
    assert [c[0] for c in asking.calls] == ["stub__fail", "stub__add"]
    saved = await _saved(live, h, events[0].data["conversation_id"])
    assert [c["status"] for c in saved["tool_calls"]] == ["ok", "error", "error"]


async def test_re_attach_shows_the_pending_call_in_a_snapshot(
    live: httpx.AsyncClient, alice: dict, asking: AskingTools
) -> None:
    h = alice["headers"]
    body = {"message": _tool("ask__add", a=4, b=4)}
    async with aconnect_sse(live, "POST", "/chat/stream", json=body, headers=h) as source:
        events = await read_until(source, "tool_approval")
        message_id, call_id = events[0].data["message_id"], events[-1].data["call_id"]
        # a device that never saw this answer's events: an id the log cannot replay from
        async with aconnect_sse(
            live, "GET", f"/chat/stream/{message_id}", headers={**h, "Last-Event-ID": "9999"}
        ) as other:
            snapshot = (await read_events(other, 1))[0]
        assert snapshot.name == "snapshot"
        assert snapshot.data["status"] == "awaiting_approval"
        pending = snapshot.data["tool_calls"][0]
        assert (pending["id"], pending["status"]) == (call_id, "awaiting_approval")
        assert pending["expires_at"] == events[-1].data["expires_at"]
        assert (
            await live.post(decision_path(message_id, call_id, "approve"), headers=h)
        ).status_code == 202
        events += await read_events(source)
    assert events[-1].name == "done"


async def test_auto_approved_tools_and_the_preference_rules(
    live: httpx.AsyncClient, alice: dict, asking: AskingTools
) -> None:
    h = alice["headers"]
    bad = await live.put("/users/preferences", headers=h, json={"auto_approve_tools": ["add"]})
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
    ok = await live.put("/users/preferences", headers=h, json={"auto_approve_tools": ["ask__add"]})
    assert ok.status_code == 200 and ok.json()["auto_approve_tools"] == ["ask__add"]
    async with aconnect_sse(
        live, "POST", "/chat/stream", json={"message": _tool("ask__add", a=5, b=5)}, headers=h
    ) as source:
        events = await read_events(source)
    assert "tool_approval" not in names(events) and events[-1].name == "done"
    assert asking.calls == [("stub__add", {"a": 5, "b": 5})]
    cleared = await live.put("/users/preferences", headers=h, json={"auto_approve_tools": None})
    assert cleared.json()["auto_approve_tools"] == []


async def test_bad_decisions_are_refused_before_any_lookup(
    live: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    message_id = "00000000-0000-4000-8000-000000000000"
    for path, body in (
        (decision_path(message_id, "c%00", "approve"), None),
        (decision_path(message_id, "c" * 201, "deny"), None),
        (decision_path(message_id, "c1", "deny"), {"reason": "\u0000"}),
        (decision_path(message_id, "c1", "deny"), {"reason": "x" * 2001}),
        (decision_path(message_id, "c1", "deny"), {"why": "extra field"}),
        (decision_path("not-a-uuid", "c1", "approve"), None),
    ):
        response = await live.post(path, headers=h, json=body)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["code"] == "validation_error"
    no_auth = await live.post(decision_path(message_id, "c1", "approve"))
    assert_error(no_auth, 401, "not_authenticated")
