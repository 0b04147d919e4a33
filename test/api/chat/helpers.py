"""Chat fixtures: a recording tool stub, the emptied fake upstream, another instance's paths."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from app.api import deps
from app.services.tools import Toolbox, ToolSource
from test.api.chat.stubs import StubTools


@contextmanager
def tools_of(app: Any, source: ToolSource) -> Iterator[None]:
    """Chat's tools come from `source` alone while the block runs."""
    app.dependency_overrides[deps.get_tools] = lambda: Toolbox([source])
    try:
        yield
    finally:
        del app.dependency_overrides[deps.get_tools]


@pytest.fixture
def stub_tools(app: Any) -> Iterator[StubTools]:
    """Give chat a recording stub as its tool source during one test."""
    stub = StubTools(delay=0.05)
    with tools_of(app, stub):
        yield stub


@pytest.fixture
def upstream(fake_llm: Any) -> Iterator[Any]:
    """The session's fake LLM upstream, emptied for this test."""
    fake_llm._queue.clear()
    fake_llm._by_model.clear()
    fake_llm.requests.clear()
    fake_llm.default = None
    yield fake_llm
    fake_llm._queue.clear()
    fake_llm._by_model.clear()
    fake_llm.default = None


@pytest.fixture
def instance_paths(
    app: Any, database_url: str, log_dir: Path, config_dir: Path
) -> tuple[str, Path, Path]:
    """What another app instance needs (the shared app migrated and emptied the database)."""
    return database_url, log_dir, config_dir
