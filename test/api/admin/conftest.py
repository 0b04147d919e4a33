"""Fixtures of the administration tests: an admin account, a registration mode."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from app.api import deps
from app.core.config import RegistrationMode
from app.state import AppState
from test.support.auth import make_admin, register_and_login


@pytest.fixture
async def root(client: httpx.AsyncClient, state: AppState) -> AsyncIterator[dict[str, Any]]:
    """A registered, logged-in administrator."""
    account = await register_and_login(client, "root")
    await make_admin(state, account["user"]["id"])
    yield account


@pytest.fixture
def registration_mode(app: Any, state: AppState) -> Iterator[Callable[[RegistrationMode], None]]:
    """Switch REGISTRATION_MODE for this test (the routes read it through `SettingsDep`)."""

    def switch(mode: RegistrationMode) -> None:
        changed = state.settings.model_copy(update={"registration_mode": mode})
        app.dependency_overrides[deps.get_settings_dep] = lambda: changed

    yield switch
    app.dependency_overrides.pop(deps.get_settings_dep, None)
