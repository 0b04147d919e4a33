"""Uploading in the file tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from app.api import deps
from app.api.deps import SessionDep, StateDep
from app.services.files import FileService, upload_limits
from test.support.files import multipart


async def upload(
    client: httpx.AsyncClient,
    user: dict[str, Any],
    name: bytes | str,
    data: bytes,
    content_type: str = "application/octet-stream",
) -> httpx.Response:
    """POST /files with `data` as the field `file` named `name`."""
    body, headers = multipart(name, data, content_type)
    return await client.post("/files", content=body, headers={**user["headers"], **headers})


@contextmanager
def as_separate_workers(application: Any) -> Iterator[None]:
    """Requests as if each ran in its own worker: no shared upload-check gate (a worker lets
    one upload at a time through its checks; across workers only the database decides)."""

    async def ungated(state: StateDep, session: SessionDep) -> FileService:
        return FileService(
            session=session, storage=state.file_storage, limits=upload_limits(state.settings)
        )

    application.dependency_overrides[deps.get_file_service] = ungated
    try:
        yield
    finally:
        application.dependency_overrides.pop(deps.get_file_service)
