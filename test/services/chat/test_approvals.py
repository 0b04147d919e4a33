"""Decisions on tool calls across two registries sharing Redis: taken once, heard by the
owner, the owner's timeout claims the call; a paused generation leaves its user's count."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from app.core.errors import Conflict, NotFound
from app.services.chat.redis_mirror import APPROVAL_CHANNEL
from app.services.chat.registry import GenerationRegistry
from test.support.waiting import eventually

REDIS_DB = 8


@pytest.fixture
async def pair(private_redis: Any) -> AsyncIterator[tuple[GenerationRegistry, GenerationRegistry]]:
    """Two workers' registries on one (flushed) Redis database."""
    url = private_redis.url(REDIS_DB)
    raw = Redis.from_url(url)
    await raw.flushdb()
    owner, other = (GenerationRegistry(redis_url=url, retention_s=30) for _ in range(2))
    for registry in (owner, other):
        await registry.start()

    async def listening() -> bool:  # both workers hear decisions (pub/sub is not queued)
        counts = dict(await raw.pubsub_numsub(APPROVAL_CHANNEL))
        return int(counts.get(APPROVAL_CHANNEL.encode(), 0)) >= 2

    await eventually(listening, what="both workers subscribed")
    await raw.aclose()
    yield owner, other
    for registry in (owner, other):
        await registry.aclose(grace_s=0)


async def test_a_decision_on_another_worker_is_taken_once(
    pair: tuple[GenerationRegistry, GenerationRegistry],
) -> None:
    owner, other = pair
    user, message = uuid.uuid4(), uuid.uuid4()
    await owner.approvals.open(message_id=message, user_id=user, call_id="c1", wait_s=30)
    waiting = asyncio.create_task(
        owner.approvals.wait(message_id=message, call_id="c1", timeout_s=30)
    )
    with pytest.raises(NotFound):  # another user
        await other.approvals.decide(
            user_id=uuid.uuid4(), message_id=message, call_id="c1", approve=True, reason=None
        )
    await other.approvals.decide(
        user_id=user, message_id=message, call_id="c1", approve=False, reason="no"
    )
    decision = await asyncio.wait_for(waiting, 5)
    assert (decision.outcome, decision.reason) == ("denied", "no")
    for desk in (owner.approvals, other.approvals):
        with pytest.raises(Conflict):
            await desk.decide(
                user_id=user, message_id=message, call_id="c1", approve=True, reason=None
            )


async def test_the_owners_timeout_claims_the_call(
    pair: tuple[GenerationRegistry, GenerationRegistry],
) -> None:
    owner, other = pair
    user, message = uuid.uuid4(), uuid.uuid4()
    await owner.approvals.open(message_id=message, user_id=user, call_id="c2", wait_s=30)
    decision = await owner.approvals.wait(message_id=message, call_id="c2", timeout_s=0.05)
    assert decision.outcome == "timeout"
    with pytest.raises(Conflict):
        await other.approvals.decide(
            user_id=user, message_id=message, call_id="c2", approve=True, reason=None
        )


async def test_a_paused_generation_leaves_its_users_count(
    pair: tuple[GenerationRegistry, GenerationRegistry],
) -> None:
    owner, other = pair
    user = uuid.uuid4()
    gen = owner.create(message_id=uuid.uuid4(), user_id=user)

    async def counted(expected: int) -> bool:
        return await other.running_for(user) == expected and await owner.running_for(user) == (
            expected
        )

    await eventually(lambda: counted(1), what="the generation counted on both workers")
    owner.set_paused(gen, paused=True)
    await eventually(lambda: counted(0), what="the paused generation not counted")
    owner.set_paused(gen, paused=False)
    await eventually(lambda: counted(1), what="the generation counted again")
