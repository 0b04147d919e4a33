"""Quotas: refused at the edge with 429 `quota_exceeded` + `Retry-After`, race-free, and a
running answer is never cut (both DBs)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update

from app.models import User
from app.repositories.usage_counters import UsageCounterRepository
from app.services.llm import ChatMessage, estimate_tokens
from app.services.usage.quota import QuotaGuard
from app.services.usage.windows import day_of, month_of
from app.state import AppState
from test.support.assertions import assert_error
from test.support.sse import stream_chat
from test.support.waiting import eventually


async def _settled(state: AppState, user_id: str, window: str, tokens: int) -> None:
    """Wait until the finished answers' reservations are settled (done after the stream)."""

    async def counted() -> bool:
        async with state.session_factory() as session:
            found = await UsageCounterRepository(session).get(
                user_id=uuid.UUID(user_id), window=window
            )
        return found is not None and found[0] == tokens

    await eventually(counted, what=f"counter {window} at {tokens} tokens")


async def _set_quota(state: AppState, user_id: str, **quota: Any) -> None:
    async with state.session_factory() as session:
        await session.execute(update(User).where(User.id == uuid.UUID(user_id)).values(**quota))
        await session.commit()


def _retry_after_ok(response: httpx.Response, reset: datetime) -> None:
    """`Retry-After` is the whole seconds to the window's reset (a second of slack)."""
    left = (reset - datetime.now(UTC)).total_seconds()
    assert abs(int(response.headers["retry-after"]) - left) <= 2, response.headers


async def test_a_running_answer_finishes_past_the_quota_then_the_next_is_refused(
    client: httpx.AsyncClient, alice: dict, state: AppState
) -> None:
    prompt = "a b c d e f g h i j k l m n o p q r s t"
    await _set_quota(state, alice["user"]["id"], quota_tokens_per_day=20)
    events = await stream_chat(client, alice["headers"], message=prompt, model="vektor-echo")
    assert events[-1].name == "done"  # far more than 20 tokens, not cut
    usage = next(e.data for e in events if e.name == "usage")
    assert usage["input_tokens"] + usage["output_tokens"] > 20
    today = day_of(datetime.now(UTC)).key
    await _settled(
        state, alice["user"]["id"], today, usage["input_tokens"] + usage["output_tokens"]
    )

    refused = await client.post("/chat/stream", json={"message": "more"}, headers=alice["headers"])
    assert_error(refused, 429, "quota_exceeded")
    _retry_after_ok(refused, day_of(datetime.now(UTC)).end)

    mine = (await client.get("/users/me/usage", headers=alice["headers"])).json()
    assert mine["quota"]["tokens_per_day"] == 20
    assert mine["quota"]["tokens_today"] == usage["input_tokens"] + usage["output_tokens"]


async def test_cost_per_month_is_refused_until_the_next_month(
    client: httpx.AsyncClient, alice: dict, state: AppState
) -> None:
    text = "word " * 30  # echo-priced: $1000 / $2000 per million input / output tokens
    estimate = estimate_tokens(ChatMessage(role="user", content=text)) * 1000 / 1_000_000
    await _set_quota(state, alice["user"]["id"], quota_cost_per_month=estimate * 1.5)
    first = await stream_chat(client, alice["headers"], message=text, model="echo-priced")
    assert first[-1].name == "done"
    used = next(e.data for e in first if e.name == "usage")
    month = month_of(datetime.now(UTC)).key
    await _settled(state, alice["user"]["id"], month, used["input_tokens"] + used["output_tokens"])
    body = {"message": "again", "model": "echo-priced"}
    refused = await client.post("/chat/stream", json=body, headers=alice["headers"])
    assert_error(refused, 429, "quota_exceeded")
    _retry_after_ok(refused, month_of(datetime.now(UTC)).end)


async def test_another_user_without_a_quota_is_not_limited(
    client: httpx.AsyncClient, alice: dict, bob: dict, state: AppState
) -> None:
    await _set_quota(state, alice["user"]["id"], quota_tokens_per_day=0)
    refused = await client.post("/chat/stream", json={"message": "hi"}, headers=alice["headers"])
    assert_error(refused, 429, "quota_exceeded")
    events = await stream_chat(client, bob["headers"], message="hi")
    assert events[-1].name == "done"


async def test_two_requests_at_the_edge_cannot_both_pass(
    client: httpx.AsyncClient, alice: dict, state: AppState
) -> None:
    text = "the same question " * 20
    estimate = estimate_tokens(ChatMessage(role="user", content=text))
    # room for one estimate, not two: the counter starts from the day's answers (none)
    await _set_quota(state, alice["user"]["id"], quota_tokens_per_day=estimate + estimate // 2)
    body = {"message": text, "model": "echo-slow"}
    answers = await asyncio.gather(
        *(client.post("/chat/stream", json=body, headers=alice["headers"]) for _ in range(2))
    )
    codes = sorted(response.status_code for response in answers)
    assert codes == [200, 429], [r.text[:200] for r in answers]


async def test_reservations_race_on_the_counter_directly(alice: dict, state: AppState) -> None:
    await _set_quota(state, alice["user"]["id"], quota_tokens_per_day=100)
    async with state.session_factory() as session:
        user = await session.get(User, uuid.UUID(alice["user"]["id"]))
    assert user is not None
    guard = QuotaGuard(settings=state.settings, session_factory=state.session_factory)
    results = await asyncio.gather(
        *(guard.reserve(user=user, tokens=30, cost_usd=0) for _ in range(5)),
        return_exceptions=True,
    )
    passed = [r for r in results if not isinstance(r, BaseException)]
    assert len(passed) == 3  # 3 x 30 <= 100 < 4 x 30
    assert all(type(r).__name__ == "QuotaExceeded" for r in results if r not in passed)
    # the settlement gives back what an answer did not use
    await guard.settle(passed[0], {"input_tokens": 0, "output_tokens": 0})
    assert await guard.reserve(user=user, tokens=30, cost_usd=0) is not None
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert await guard.reserve(user=user, tokens=90, cost_usd=0, now=tomorrow) is not None


async def test_regenerate_and_edit_are_refused_like_a_new_message(
    client: httpx.AsyncClient, alice: dict, state: AppState
) -> None:
    events = await stream_chat(client, alice["headers"], message="first")
    answer_id = events[0].data["message_id"]
    question_id = events[0].data["user_message_id"]
    await _set_quota(state, alice["user"]["id"], quota_tokens_per_day=0)
    h = alice["headers"]
    regenerate = await client.post(f"/chat/messages/{answer_id}/regenerate", json={}, headers=h)
    assert_error(regenerate, 429, "quota_exceeded")
    edit = await client.post(
        f"/chat/messages/{question_id}/edit", json={"content": "second"}, headers=h
    )
    assert_error(edit, 429, "quota_exceeded")
    assert int(edit.headers["retry-after"]) >= 1
