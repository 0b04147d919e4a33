"""Test fixtures: the real app, real migrations, SQLite by default or PostgreSQL via env.

`TEST_DATABASE_URL` selects the database. For PostgreSQL a fresh database is created for
the test session (so concurrent runs never collide) and dropped at the end; the schema is
made by the real Alembic migrations. Each test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.db.base import Base
from app.db.migrate import upgrade_head
from app.db.session import create_engine
from app.main import create_app
from app.state import AppState
from test.support.apps import REPO_CONFIG, in_process_client, make_settings, serve_app
from test.support.auth import register_and_login
from test.support.databases import private_database
from test.support.db import rolled_back_session, savepoints_on_sqlite
from test.support.pg_cluster import PgCluster, private_cluster


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh database for this test session."""
    base = os.environ.get("TEST_DATABASE_URL", "").strip()
    with private_database(base, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def repository_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second private database for the tests below the API (`db_session`)."""
    base = os.environ.get("TEST_DATABASE_URL", "").strip()
    with private_database(base, tmp_path_factory.mktemp("repo-db"), "vektor_repo") as url:
        yield url


@pytest.fixture(scope="session")
async def repository_engine(repository_database_url: str, log_dir: Path) -> AsyncIterator[Any]:
    """The app's engine on that database, migrated once, able to nest savepoints."""
    await asyncio.to_thread(upgrade_head, repository_database_url)
    engine = create_engine(make_settings(repository_database_url, log_dir))
    savepoints_on_sqlite(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db_session(repository_engine: Any) -> AsyncIterator[AsyncSession]:
    """A session whose every write is rolled back after the test (commits are savepoints)."""
    async with rolled_back_session(repository_engine) as session:
        yield session


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the app under test writes app.log, api.log and error.log."""
    return tmp_path_factory.mktemp("logs")


FAKE_OPENAI_KEY = "sk-test-openai-" + "k" * 24
FAKE_ANTHROPIC_KEY = "sk-ant-test-" + "k" * 24


@pytest.fixture(scope="session")
async def fake_llm() -> AsyncIterator[Any]:
    """A real loopback OpenAI + Anthropic upstream shared by the session (script per test)."""
    from test.fakes.llm_upstream import start_fake_upstream

    async with start_fake_upstream() as fake:
        yield fake


def extra_models(fake_llm: Any) -> list[dict[str, Any]]:
    """Models the tests add to the shipped ones: slow echo and the fake upstreams."""
    return [
        {
            "id": "echo-slow",
            "provider": "echo",
            "name": "Slow echo",
            "supports_tools": True,
            "delay_ms": 30,
        },
        {
            "id": "fake-openai",
            "provider": "openai",
            "model": "gpt-fake",
            "base_url": fake_llm.openai_base_url,
            "api_key_env": "VEKTOR_TEST_OPENAI_KEY",
            "supports_tools": True,
            "supports_vision": True,
            "context_window": 4000,
            "max_output_tokens": 500,
            "timeout_s": 5,
            "fallbacks": ["fake-anthropic"],
        },
        {
            "id": "fake-anthropic",
            "provider": "anthropic",
            "model": "claude-fake",
            "base_url": fake_llm.anthropic_base_url,
            "api_key_env": "VEKTOR_TEST_ANTHROPIC_KEY",
            "supports_tools": True,
            "supports_vision": True,
            "timeout_s": 5,
        },
        {
            "id": "fake-anthropic-thinking",
            "provider": "anthropic",
            "model": "claude-thinking-fake",
            "base_url": fake_llm.anthropic_base_url,
            "api_key_env": "VEKTOR_TEST_ANTHROPIC_KEY",
            "supports_tools": True,
            "timeout_s": 5,
            "max_output_tokens": 500,
            "reasoning": {"budget_tokens": 1024},
        },
        {
            "id": "echo-blind",
            "provider": "echo",
            "name": "Echo without vision",
            "supports_vision": False,
        },
        {
            "id": "echo-priced",
            "provider": "echo",
            "name": "Echo with prices (usage tests)",
            "pricing": {"input_per_mtok": 1000, "output_per_mtok": 2000},
        },
        {
            "id": "fake-openai-priced",
            "provider": "openai",
            "model": "gpt-fake",
            "base_url": fake_llm.openai_base_url,
            "api_key_env": "VEKTOR_TEST_OPENAI_KEY",
            "timeout_s": 5,
            "pricing": {"input_per_mtok": 3, "output_per_mtok": 15, "cached_input_per_mtok": 0.3},
        },
        {
            "id": "fake-nokey",
            "provider": "openai",
            "model": "x",
            "base_url": fake_llm.openai_base_url,
            "api_key_env": "VEKTOR_TEST_UNSET_KEY",
        },
    ]


@pytest.fixture(scope="session")
def config_dir(tmp_path_factory: pytest.TempPathFactory, fake_llm: Any) -> Path:
    """The shipped model configs plus the test models; no MCP servers (tests add their own)."""
    import json

    os.environ["VEKTOR_TEST_OPENAI_KEY"] = FAKE_OPENAI_KEY
    os.environ["VEKTOR_TEST_ANTHROPIC_KEY"] = FAKE_ANTHROPIC_KEY
    os.environ.pop("VEKTOR_TEST_UNSET_KEY", None)
    directory = tmp_path_factory.mktemp("config")
    shipped = json.loads((REPO_CONFIG / "model_configs.json").read_text())
    shipped["models"] += extra_models(fake_llm)
    (directory / "model_configs.json").write_text(json.dumps(shipped))
    (directory / "mcp_servers.json").write_text(json.dumps({"servers": {}}))
    return directory


@pytest.fixture(scope="session")
def settings(database_url: str, log_dir: Path, config_dir: Path) -> Settings:
    """The settings of the shared app."""
    return make_settings(database_url, log_dir, config_dir=config_dir)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Any]:
    """The real application, started once for the session (migrations run at start-up)."""
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=120, shutdown_timeout=60):
        yield application


@pytest.fixture(scope="session")
def state(app: Any) -> AppState:
    """The lifespan-owned resources of the shared app."""
    vektor: AppState = app.state.vektor
    return vektor


@pytest.fixture(autouse=True)
async def _clean(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Empty every table and reset rate limits before each test that uses the app."""
    if "app" not in request.fixturenames:
        yield
        return
    vektor: AppState = request.getfixturevalue("state")
    await vektor.audit.flush()  # the last test's audit events land before the tables empty
    async with vektor.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(table.delete())
    await vektor.limiter.reset()
    yield


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    async with in_process_client(app) as c:
        yield c


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    """A PostgreSQL cluster of the module's own, to stop and start (skips where none can run)."""
    with private_cluster() as running:
        yield running


@pytest.fixture(scope="session")
def private_redis() -> Any:
    """The suite's own redis-server on a free port (never the shared one on 6379)."""
    from test.support.redis_server import REDIS_SERVER, SKIP_REASON, shared_redis

    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    return shared_redis()


@asynccontextmanager
async def two_instances_on_redis(
    *, database_url: str, log_dir: Path, config_dir: Path, redis_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two app instances with their own in-process state, sharing the database and a
    (flushed) database of the suite's private Redis, each on a real loopback socket."""
    from contextlib import AsyncExitStack

    from redis import Redis

    assert "127.0.0.1:6379" not in redis_url, "tests use their own redis-server"
    Redis.from_url(redis_url).flushdb()
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            settings = make_settings(
                database_url, log_dir, config_dir=config_dir, redis_url=redis_url
            )
            application = create_app(settings)
            await stack.enter_async_context(LifespanManager(application))
            url = await stack.enter_async_context(serve_app(application))
            clients.append(
                await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
            )
        yield clients[0], clients[1]


@pytest.fixture
async def two_instances(
    app: Any, database_url: str, log_dir: Path, config_dir: Path, private_redis: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Instances A and B (`two_instances_on_redis`) on database 13 of the private Redis."""
    async with two_instances_on_redis(
        database_url=database_url,
        log_dir=log_dir,
        config_dir=config_dir,
        redis_url=private_redis.url(13),
    ) as pair:
        yield pair


@pytest.fixture(scope="session")
async def live_url(app: Any) -> AsyncIterator[str]:
    """The shared app on a real loopback socket."""
    async with serve_app(app) as url:
        yield url


@pytest.fixture
async def live(live_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the shared app over a real socket."""
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as c:
        yield c


@pytest.fixture
async def alice(client: httpx.AsyncClient) -> dict[str, Any]:
    """A registered, logged-in user."""
    return await register_and_login(client, "alice")


@pytest.fixture
async def bob(client: httpx.AsyncClient) -> dict[str, Any]:
    """A second registered, logged-in user (for ownership tests)."""
    return await register_and_login(client, "bob")
