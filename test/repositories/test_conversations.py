"""`ConversationRepository` on the real schema: ownership is part of every query, the
history page is keyset-paginated without gaps, search treats LIKE wildcards as text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.repositories.conversations import ConversationRepository
from test.support.db import add_conversation, add_user


async def test_only_the_owner_gets_a_conversation_or_its_messages(
    db_session: AsyncSession,
) -> None:
    repo = ConversationRepository(db_session)
    alice, bob = await add_user(db_session), await add_user(db_session)
    chat = await add_conversation(db_session, alice, "hello", "hi there")
    found = await repo.get_for_user(user_id=alice.id, conversation_id=chat.id)
    assert found is chat
    assert await repo.get_for_user(user_id=bob.id, conversation_id=chat.id) is None
    assert await repo.get_for_user(user_id=alice.id, conversation_id=uuid.uuid4()) is None
    messages = await repo.messages(conversation_id=chat.id)
    assert [(m.role, m.content) for m in messages] == [("user", "hello"), ("assistant", "hi there")]
    first = messages[0].id
    assert await repo.get_message_for_user(user_id=alice.id, message_id=first) is messages[0]
    assert await repo.get_message_for_user(user_id=bob.id, message_id=first) is None
    assert not await repo.delete_for_user(user_id=bob.id, conversation_id=chat.id)
    assert await repo.delete_for_user(user_id=alice.id, conversation_id=chat.id)
    assert await repo.get_for_user(user_id=alice.id, conversation_id=chat.id) is None


async def test_pages_are_newest_first_without_gaps_even_at_equal_times(
    db_session: AsyncSession,
) -> None:
    repo = ConversationRepository(db_session)
    alice, bob = await add_user(db_session), await add_user(db_session)
    now = datetime.now(UTC).replace(microsecond=0)
    # three pairs share an updated_at: the id breaks the tie
    made = [
        await add_conversation(db_session, alice, f"topic {i}", updated_at=now - timedelta(i // 2))
        for i in range(6)
    ]
    await add_conversation(db_session, bob, "not alice's", updated_at=now)
    seen: list[uuid.UUID] = []
    after = None
    for _ in range(10):
        page = await repo.list_page(
            user_id=alice.id, limit=4, after=after, query=None, archived=None
        )
        seen += [c.id for c in page]
        if len(page) < 4:
            break
        after = (page[-1].updated_at, page[-1].id)
    expected = sorted(made, key=lambda c: (c.updated_at, c.id), reverse=True)
    assert seen == [c.id for c in expected]


async def test_archived_filter_and_search_by_title_or_message(db_session: AsyncSession) -> None:
    repo = ConversationRepository(db_session)
    alice = await add_user(db_session)
    plans = await add_conversation(db_session, alice, "holiday plans", title="Trip")
    await add_conversation(db_session, alice, "groceries", title="Shopping", archived=True)

    async def ids(query: str | None = None, archived: bool | None = None) -> list[uuid.UUID]:
        page = await repo.list_page(
            user_id=alice.id, limit=10, after=None, query=query, archived=archived
        )
        return [c.id for c in page]

    assert len(await ids()) == 2
    assert await ids(archived=False) == [plans.id]
    assert await ids(query="holiday") == [plans.id]
    assert await ids(query="trip") == [plans.id]
    assert await ids(query="nothing like it") == []


async def test_search_takes_like_wildcards_literally(db_session: AsyncSession) -> None:
    if db_session.bind.dialect.name == "postgresql":
        pytest.skip("PostgreSQL searches with full-text search, not LIKE")
    repo = ConversationRepository(db_session)
    alice = await add_user(db_session)
    percent = await add_conversation(db_session, alice, "100% sure")
    await add_conversation(db_session, alice, "1000 ways")
    page = await repo.list_page(user_id=alice.id, limit=10, after=None, query="100%", archived=None)
    assert [c.id for c in page] == [percent.id]
    under = await repo.list_page(user_id=alice.id, limit=10, after=None, query="_", archived=None)
    assert under == []
