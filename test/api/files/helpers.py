"""Uploading in the file tests."""

from __future__ import annotations

from typing import Any

import httpx

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
