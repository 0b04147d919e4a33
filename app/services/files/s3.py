"""Uploads in any S3-compatible store (AWS S3, MinIO, Ceph, moto in the tests) via aiobotocore.

The endpoint URL and the keys are secrets: they go to the client and nowhere else (status
shows only `s3`). A local file is sent as a streamed body, and an async byte stream is first
spooled to a temporary file (1 MiB in memory at most): never the whole object in memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from anyio import to_thread
from botocore.exceptions import BotoCoreError, ClientError

from app.services.files.storage import CHUNK_BYTES, ObjectMissing, StorageUnavailable, check_key

SPOOL_BYTES = 1024 * 1024
_MISSING = {"404", "NoSuchKey", "NotFound"}
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → (`bucket`, `some/prefix/`); the prefix may be empty."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError("FILE_STORAGE_URL must look like s3://bucket/prefix")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


class S3Storage:
    """Objects under `prefix` in one bucket; the client is opened by `start`, closed by
    `aclose` (the lifespan owns both)."""

    kind = "s3"

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
    ) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self._options: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "config": AioConfig(connect_timeout=10, read_timeout=60, retries={"max_attempts": 3}),
        }
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def start(self) -> None:
        """Open the client (connections are pooled and reused)."""
        creator = get_session().create_client("s3", **self._options)
        self._client = await self._stack.enter_async_context(creator)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> None:
        """Spool the chunks (memory up to 1 MiB, then disk) and upload them."""
        target = self._key(key)
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        try:
            async for chunk in chunks:
                await to_thread.run_sync(spool.write, chunk)
            await to_thread.run_sync(spool.seek, 0)
            with _failures(key):
                await self._client.put_object(Bucket=self.bucket, Key=target, Body=spool)
        finally:
            spool.close()

    async def put_path(self, key: str, path: Path) -> None:
        """Upload a local file as a streamed body."""
        target = self._key(key)
        handle = await to_thread.run_sync(path.open, "rb")
        try:
            with _failures(key):
                await self._client.put_object(Bucket=self.bucket, Key=target, Body=handle)
        finally:
            handle.close()

    async def open(self, key: str) -> AsyncIterator[bytes]:
        """GET now (ObjectMissing before any byte), then the body in chunks."""
        with _failures(key):
            answer = await self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        return _body_chunks(answer["Body"])

    async def delete(self, key: str) -> None:
        """DELETE the object (S3 answers the same when it is missing)."""
        with _failures(key):
            await self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    async def exists(self, key: str) -> bool:
        """HEAD the object."""
        try:
            with _failures(key):
                await self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ObjectMissing:
            return False
        return True

    async def delete_prefix(self, prefix: str) -> None:
        """List the objects under the prefix and delete them, 1000 per request."""
        paginator = self._client.get_paginator("list_objects_v2")
        listing = paginator.paginate(Bucket=self.bucket, Prefix=f"{self._key(prefix)}/")
        with _failures(prefix):
            async for page in listing:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                for start in range(0, len(keys), _DELETE_BATCH):
                    batch = keys[start : start + _DELETE_BATCH]
                    await self._client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                    )

    async def aclose(self) -> None:
        """Close the client and its connections."""
        await self._stack.aclose()


@contextmanager
def _failures(key: str) -> Iterator[None]:
    """A missing object is ObjectMissing; every other failure StorageUnavailable."""
    try:
        yield
    except ClientError as exc:
        if _error_code(exc) in _MISSING:
            raise ObjectMissing(key) from exc
        raise StorageUnavailable(f"S3 refused the request: {_error_code(exc)}") from exc
    except (BotoCoreError, OSError) as exc:
        raise StorageUnavailable(f"S3 cannot be reached: {type(exc).__name__}") from exc


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


async def _body_chunks(body: Any) -> AsyncIterator[bytes]:
    try:
        async for chunk in body.iter_chunks(CHUNK_BYTES):
            yield chunk
    finally:
        body.close()
