"""`UserRepository` on the real schema: look-ups by login and the uniqueness check."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.repositories.users import UserRepository
from test.support.db import add_user


async def test_a_user_is_found_by_username_or_email(db_session: AsyncSession) -> None:
    users = UserRepository(db_session)
    dora = await add_user(db_session, "dora")
    await add_user(db_session, "dory")
    assert await users.get_by_login(identifier="dora") is dora
    assert await users.get_by_login(identifier="dora@example.com") is dora
    assert await users.get_by_login(identifier="dor") is None
    assert await users.get(user_id=dora.id) is dora


async def test_find_taken_names_each_clash_and_skips_the_user_itself(
    db_session: AsyncSession,
) -> None:
    users = UserRepository(db_session)
    dora = await add_user(db_session, "dora")
    taken = users.find_taken
    assert await taken(email="dora@example.com", username="new") == (True, False)
    assert await taken(email="new@example.com", username="dora") == (False, True)
    assert await taken(email="dora@example.com", username="dora") == (True, True)
    assert await taken(email=None, username=None) == (False, False)
    assert await taken(email="dora@example.com", username="dora", exclude_id=dora.id) == (
        False,
        False,
    )


async def test_what_a_test_wrote_is_gone_for_the_next_one(db_session: AsyncSession) -> None:
    # the two tests above both made "dora": each ran in its own rolled-back transaction
    assert await UserRepository(db_session).get_by_login(identifier="dora") is None
    await add_user(db_session, "dora")
    await db_session.commit()  # the code under test may commit: that is a savepoint here
    assert await UserRepository(db_session).get_by_login(identifier="dora") is not None
