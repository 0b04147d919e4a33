"""`MessageTreeRepository` on the real schema: a path is one walk up `parent_id`, bounded by
its conversation; a branch's newest leaf; the messages beside a path."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Conversation, Message, User
from app.repositories.message_tree import MessageTreeRepository
from test.support.db import add_user

_START = datetime(2025, 1, 1, tzinfo=UTC)


async def _tree(
    session: AsyncSession, user: User, edges: list[tuple[str, str | None]]
) -> tuple[Conversation, dict[str, uuid.UUID]]:
    """A conversation whose messages are `(name, parent name)`, created in list order."""
    conversation = Conversation(user_id=user.id, created_at=_START, updated_at=_START)
    session.add(conversation)
    await session.flush()
    ids: dict[str, uuid.UUID] = {}
    for index, (name, parent) in enumerate(edges):
        ids[name] = uuid.uuid4()
        session.add(
            Message(
                id=ids[name],
                conversation_id=conversation.id,
                user_id=user.id,
                parent_id=ids[parent] if parent else None,
                role="user" if name.startswith("u") else "assistant",
                content=name,
                created_at=_START + timedelta(seconds=index),
                updated_at=_START,
            )
        )
    await session.flush()
    return conversation, ids


# u1 → a1 → u2 → a2            (the first branch)
#         └→ u3 → a3 → u4      (a fork below a1, newer)
#   └→ a1b                     (a regenerated answer to u1)
EDGES = [
    ("u1", None),
    ("a1", "u1"),
    ("u2", "a1"),
    ("a2", "u2"),
    ("u3", "a1"),
    ("a3", "u3"),
    ("a1b", "u1"),
    ("u4", "a3"),
]


async def test_path_newest_descendant_and_branch(db_session: AsyncSession) -> None:
    tree = MessageTreeRepository(db_session)
    user = await add_user(db_session)
    conversation, ids = await _tree(db_session, user, EDGES)
    cid = conversation.id
    path = await tree.path_to(conversation_id=cid, leaf_id=ids["u4"])
    assert [m.content for m in path] == ["u1", "a1", "u3", "a3", "u4"]
    assert await tree.path_to(conversation_id=uuid.uuid4(), leaf_id=ids["u4"]) == []

    assert await tree.newest_leaf(conversation_id=cid, message_id=ids["a1"]) == ids["u4"]
    assert await tree.newest_leaf(conversation_id=cid, message_id=ids["u2"]) == ids["a2"]
    assert await tree.newest_leaf(conversation_id=cid, message_id=ids["u1"]) == ids["u4"]
    assert await tree.newest_leaf(conversation_id=cid, message_id=ids["a1b"]) == ids["a1b"]
    assert await tree.newest_leaf(conversation_id=uuid.uuid4(), message_id=ids["u1"]) is None

    on_path, beside = await tree.branch(conversation_id=cid, leaf_id=ids["a2"])
    assert [m.content for m in on_path] == ["u1", "a1", "u2", "a2"]
    names = {v: k for k, v in ids.items()}
    assert [names[i] for i, _ in beside] == ["u1", "a1", "u2", "a2", "u3", "a1b"]
    assert await tree.newest_leaf(conversation_id=cid, message_id=None) == ids["u4"]


async def test_a_walk_stays_in_its_conversation_and_survives_a_loop(
    db_session: AsyncSession,
) -> None:
    tree = MessageTreeRepository(db_session)
    user = await add_user(db_session)
    _, other_ids = await _tree(db_session, user, [("u1", None), ("a1", "u1")])
    conversation, ids = await _tree(db_session, user, [("u1", None), ("a1", "u1")])
    # bad data: a parent in another conversation, and a loop (each the other's parent)
    first = await db_session.get(Message, ids["u1"])
    assert first is not None
    first.parent_id = other_ids["a1"]
    await db_session.flush()
    path = await tree.path_to(conversation_id=conversation.id, leaf_id=ids["a1"])
    assert [m.id for m in path] == [ids["u1"], ids["a1"]]
    first.parent_id = ids["a1"]
    await db_session.flush()
    # the walk ends when it finds nothing new instead of running forever
    rows = await tree.path_to(conversation_id=conversation.id, leaf_id=ids["a1"])
    assert [m.id for m in rows] == [ids["u1"], ids["a1"]]
    assert (
        await tree.newest_leaf(conversation_id=conversation.id, message_id=ids["u1"]) == ids["a1"]
    )
