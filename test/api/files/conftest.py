"""The file tests run against two apps on the shared database: local storage and S3 (a
moto server on loopback). Both have small limits so the 413s are cheap to reach."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.state import AppState
from test.support.apps import in_process_client, make_settings
from test.support.s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Server, moto_s3

MAX_UPLOAD = 3 * 1024 * 1024
QUOTA = 6 * 1024 * 1024 + 512 * 1024
S3_PREFIX = "uploads"


@dataclass
class Backend:
    """One app under test and a view of what its storage holds."""

    name: str
    app: Any
    client: httpx.AsyncClient
    state: AppState
    keys: Callable[[], set[str]]  # every stored object key
    wipe: Callable[[], None]

    @property
    def temp_dir(self) -> Path:
        """Where uploads are received before they are stored."""
        return self.state.settings.data_dir / "tmp" / "uploads"

    def leftovers(self) -> list[str]:
        """Received uploads still on disk (none after any answer)."""
        return sorted(p.name for p in self.temp_dir.glob("*")) if self.temp_dir.exists() else []


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a loopback port, with the bucket."""
    with moto_s3() as server:
        yield server


def _local_keys(root: Path) -> Callable[[], set[str]]:
    def keys() -> set[str]:
        return {
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and ".tmp" not in p.relative_to(root).parts
        }

    return keys


def _local_wipe(root: Path) -> Callable[[], None]:
    def wipe() -> None:
        for child in root.iterdir() if root.exists() else []:
            if child.name != ".tmp":
                shutil.rmtree(child, ignore_errors=True)

    return wipe


def _s3_keys(server: S3Server) -> Callable[[], set[str]]:
    def keys() -> set[str]:
        return {key.removeprefix(f"{S3_PREFIX}/") for key in server.object_keys(f"{S3_PREFIX}/")}

    return keys


def _s3_wipe(server: S3Server) -> Callable[[], None]:
    def wipe() -> None:
        client: Any = server.client()
        for key in server.object_keys():
            client.delete_object(Bucket=server.bucket, Key=key)

    return wipe


@pytest.fixture(scope="session")
async def file_backends(
    app: Any,
    database_url: str,
    log_dir: Path,
    config_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    s3_server: S3Server,
) -> AsyncIterator[dict[str, Backend]]:
    """The two apps, started once for the session."""
    base = tmp_path_factory.mktemp("files")
    common = {
        "config_dir": config_dir,
        "max_upload_bytes": MAX_UPLOAD,
        "user_storage_quota_bytes": QUOTA,
        "db_auto_migrate": False,  # the shared app migrated the database
    }
    local_root = base / "local-data" / "files"
    variants = {
        "local": make_settings(database_url, log_dir, data_dir=base / "local-data", **common),
        "s3": make_settings(
            database_url,
            log_dir,
            data_dir=base / "s3-data",
            file_storage_url=f"s3://{s3_server.bucket}/{S3_PREFIX}",
            s3_endpoint_url=s3_server.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            aws_region=REGION,
            **common,
        ),
    }
    backends: dict[str, Backend] = {}
    managers = []
    try:
        for name, settings in variants.items():
            application = create_app(settings)
            manager = LifespanManager(application, startup_timeout=120, shutdown_timeout=60)
            await manager.__aenter__()
            managers.append(manager)
            client = in_process_client(application)
            state: AppState = application.state.vektor
            if name == "local":
                keys, wipe = _local_keys(local_root), _local_wipe(local_root)
            else:
                keys, wipe = _s3_keys(s3_server), _s3_wipe(s3_server)
            backends[name] = Backend(name, application, client, state, keys, wipe)
        yield backends
    finally:
        for backend in backends.values():
            await backend.client.aclose()
        for manager in reversed(managers):
            await manager.__aexit__(None, None, None)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, file_backends: dict[str, Backend]) -> Backend:
    """Each file test runs on local storage and on S3, with empty storage."""
    chosen = file_backends[request.param]
    chosen.wipe()
    return chosen
