"""No change is skipped or repeated while writers race, commit late, or commit out of order."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from app.models import User
from app.repositories.changes import ChangeRepository
from app.repositories.conversations import ConversationRepository
from app.state import AppState
from test.api.sync.helpers import Replica, server_state
from test.support.auth import TEST_PASSWORD
from test.support.factories import chat_turns
from test.support.sse import stream_chat


async def _head(state: AppState, user_id: str) -> int:
    async with state.session_factory() as session:
        stmt = select(User.change_seq).where(User.id == uuid.UUID(user_id))
        return int((await session.execute(stmt)).scalar_one())


async def test_a_late_committer_is_never_skipped(
    client: httpx.AsyncClient, alice: dict, state: AppState
) -> None:
    """T1 takes a number and stays open; T2 starts later and must wait; a poller in between
    sees neither, then both in commit order: the cursor never jumps over T1."""
    h = alice["headers"]
    user_id = uuid.UUID(alice["user"]["id"])
    first = await chat_turns(client, h, "one")
    second = await chat_turns(client, h, "two")
    replica = Replica()
    await replica.pull(client, h)

    async def rename(session: Any, conversation_id: str, title: str) -> int:
        seq = await ChangeRepository(session).allocate(user_id=user_id)
        await ConversationRepository(session).update_conversation(
            conversation_id=uuid.UUID(conversation_id), values={"title": title, "change_seq": seq}
        )
        return seq

    async def late_writer() -> int:
        async with state.session_factory() as session:
            seq = await rename(session, second, "T2")
            await session.commit()
            return seq

    async with state.session_factory() as t1:
        seq1 = await rename(t1, first, "T1")
        t2 = asyncio.create_task(late_writer())
        await asyncio.sleep(0.5)
        assert not t2.done(), "a second writer of the same user must wait for the first"
        await replica.pull(client, h)
        assert replica.conversations[first]["title"] != "T1"
        assert replica.conversations[second]["title"] != "T2"
        await t1.commit()
    seq2 = await asyncio.wait_for(t2, timeout=15)
    assert seq2 > seq1
    page = (await client.get("/sync/changes", params={"since": replica.cursor}, headers=h)).json()
    assert [c["title"] for c in page["conversations"]] == ["T1", "T2"]
    replica.apply(page)
    assert replica.state() == await server_state(client, h)


async def test_concurrent_writers_and_a_polling_device_converge(
    client: httpx.AsyncClient, alice: dict, state: AppState
) -> None:
    h = alice["headers"]
    login = await client.post("/auth/login", json={"username": "alice", "password": TEST_PASSWORD})
    other_device = {"Authorization": f"Bearer {login.json()['access_token']}"}
    rng = random.Random(6)
    seeds = [(await stream_chat(client, h, message=f"seed {i}"))[0].data for i in range(4)]
    conversation_ids = [s["conversation_id"] for s in seeds]
    running = asyncio.Semaphore(3)  # MAX_CONCURRENT_GENERATIONS

    async def chat(i: int) -> None:
        target = rng.choice([None, *conversation_ids])
        body = {"message": f"turn {i}", **({"conversation_id": target} if target else {})}
        async with running:
            await stream_chat(client, other_device, **body)

    async def rename(i: int) -> None:
        cid = rng.choice(conversation_ids)
        response = await client.patch(
            f"/chat/history/{cid}", json={"title": f"title {i}", "pinned": i % 2 == 0}, headers=h
        )
        assert response.status_code in (200, 404)

    async def prefs(i: int) -> None:
        response = await client.put(
            "/users/preferences", json={"language": f"l{i:02d}", "extra": {"i": i}}, headers=h
        )
        assert response.status_code == 200

    async def delete(i: int) -> None:
        async with running:
            created = (await stream_chat(client, other_device, message=f"doomed {i}"))[0].data
        await client.patch(
            f"/chat/history/{created['conversation_id']}", json={"title": "x"}, headers=h
        )
        assert (
            await client.delete(f"/chat/history/{created['conversation_id']}", headers=h)
        ).status_code == 204

    writers = [chat(i) for i in range(12)]
    writers += [rename(i) for i in range(25)]
    writers += [prefs(i) for i in range(10)]
    writers += [delete(i) for i in range(4)]
    rng.shuffle(writers)
    done = asyncio.Event()
    replica = Replica()

    async def poll() -> None:
        while not done.is_set():
            await replica.pull(client, h, limit=rng.choice([1, 2, 5]))
            await asyncio.sleep(0.005)

    async def write_in_waves() -> None:
        """Start the writers ten at a time, each wave once the device has read three more
        pages: reads and writes interleave however fast or loaded the machine is."""
        tasks: list[asyncio.Task[None]] = []
        for start in range(0, len(writers), 10):
            if tasks:
                seen = replica.pages
                while replica.pages < seen + 3:
                    await asyncio.sleep(0.005)
            tasks += [asyncio.create_task(w) for w in writers[start : start + 10]]
        await asyncio.gather(*tasks)

    poller = asyncio.create_task(poll())
    await asyncio.wait_for(write_in_waves(), timeout=120)
    done.set()
    pages_while_writing = replica.pages
    await asyncio.wait_for(poller, timeout=30)
    await replica.pull(client, h, limit=3)

    assert replica.state() == await server_state(client, h)
    # every change is delivered at most once: the items received never exceed the changes made
    head = await _head(state, alice["user"]["id"])
    assert replica.items <= head, (replica.items, head)
    assert pages_while_writing > 10, "the device must have been reading while others wrote"
    assert len(replica.conversations) >= 4


async def test_two_users_share_one_write_batch(
    client: httpx.AsyncClient, alice: dict, bob: dict
) -> None:
    """Chat writes of several users share a group-commit transaction; each feed stays exact."""
    limits = {"alice": asyncio.Semaphore(3), "bob": asyncio.Semaphore(3)}

    async def turn(user: dict, i: int) -> None:
        async with limits[user["user"]["username"]]:
            await stream_chat(client, user["headers"], message=f"m{i}")

    await asyncio.gather(*(turn(u, i) for i in range(6) for u in (alice, bob)))
    for user in (alice, bob):
        replica = Replica()
        await replica.pull(client, user["headers"], limit=4)
        assert replica.state() == await server_state(client, user["headers"])
        assert len(replica.conversations) == 6
