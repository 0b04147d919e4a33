"""Building the app under test: settings, a started instance, a real uvicorn on loopback.

The session's shared app is the `app` fixture (test/conftest.py); these helpers make the
others a test needs (other settings, a second instance, a real socket).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.core.config import WS_SERVER_OPTIONS, Settings
from app.main import create_app

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"


def make_settings(database_url: str, log_dir: Path, **overrides: Any) -> Settings:
    """Settings for tests: fast bcrypt, temp dirs, the repository's config."""
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "secret_key": "test-secret-key-" + "x" * 40,
        "bcrypt_rounds": 4,
        "log_dir": log_dir,
        "log_level": "DEBUG",
        "data_dir": log_dir.parent / "data",
        "redis_url": None,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def offline_config(directory: Path) -> Path:
    """A CONFIG_DIR with the repository's models and no MCP servers (nothing to spawn)."""
    directory.mkdir(parents=True, exist_ok=True)
    models = REPO_CONFIG / "model_configs.json"
    if models.exists():
        shutil.copy(models, directory / models.name)
    return directory


def in_process_client(application: Any) -> httpx.AsyncClient:
    """An HTTP client talking to a started app in-process (whole responses, no socket)."""
    transport = httpx.ASGITransport(app=application)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A started app (its own lifespan) and an in-process client."""
    application = create_app(settings)
    async with (
        LifespanManager(application, startup_timeout=120, shutdown_timeout=60),
        in_process_client(application) as client,
    ):
        yield application, client


@asynccontextmanager
async def serve_app(
    application: Any, *, access_log: bool = False, send_buffer: int | None = None
) -> AsyncIterator[str]:
    """Serve an already-started app with a real uvicorn on a loopback port (true streaming,
    real disconnects; httpx's ASGITransport buffers whole responses). `send_buffer`: the
    connections' kernel send buffer (SO_SNDBUF, inherited from the listening socket)."""
    sock = socket.socket()
    if send_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        application,
        lifespan="off",
        log_config=None,
        access_log=access_log,
        **WS_SERVER_OPTIONS,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


@asynccontextmanager
async def served(
    settings: Settings, *, timeout: float = 30
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A started app (its own lifespan) on a real loopback socket, and a client for it."""
    application = create_app(settings)
    async with (
        LifespanManager(application, startup_timeout=120, shutdown_timeout=60),
        serve_app(application) as url,
        httpx.AsyncClient(base_url=url, timeout=timeout) as client,
    ):
        yield application, client


@asynccontextmanager
async def app_instance(
    database_url: str, log_dir: Path, config_dir: Path, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """Another app instance on the test database, on a real socket: its client and state."""
    settings = make_settings(database_url, log_dir, config_dir=config_dir, **overrides)
    async with served(settings) as (application, client):
        yield client, application.state.vektor
