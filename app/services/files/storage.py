"""Where uploaded bytes live: one small interface, the local filesystem by default.

Keys are made by the service from ids only (`<user id>/<file id>`), never from a client's
file name, and `check_key` refuses anything else, so no key can climb out of the root.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, Protocol

from anyio import to_thread
from loguru import logger

CHUNK_BYTES = 256 * 1024
_KEY = re.compile(r"[0-9a-f-]{36}(/[0-9a-f-]{36}(\.txt)?)?")


class ObjectMissing(LookupError):
    """The stored object of a key does not exist."""


class StorageUnavailable(RuntimeError):
    """The store cannot be reached or refused the operation (disk full, S3 down, denied)."""


async def delete_user_files(storage: Storage | None, *, user_id: uuid.UUID) -> None:
    """Remove a deleted account's stored bytes (its file rows went with it by cascade); a store
    that does not answer leaves them there, said in the log (never fails the deletion)."""
    if storage is None:
        return
    try:
        await storage.delete_prefix(str(user_id))
    except StorageUnavailable as exc:
        logger.warning("the deleted account's files stay in storage: {}", exc)


def check_key(key: str) -> str:
    """A key as the service makes them (`<uuid>` or `<uuid>/<uuid>[.txt]`), or ValueError."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a storage key: {key!r}")
    return key


class Storage(Protocol):
    """Put, read and delete objects by key."""

    kind: str  # "local" or "s3": shown on /api/status (never the location itself)

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> None:
        """Store the bytes of `chunks` under `key` (replacing what was there)."""
        ...

    async def put_path(self, key: str, path: Path) -> None:
        """Store a local file's bytes under `key` (the file itself is left alone)."""
        ...

    async def open(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks; ObjectMissing (raised here, before any chunk)."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object (nothing happens when it is missing)."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        ...

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every object under `<prefix>/` (a user's files when the account goes)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class LocalStorage:
    """Files under a root directory; each write goes to a temporary file first and is
    renamed into place, so a reader never sees half an object."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / ".tmp"

    async def start(self) -> None:
        """Create the root (and its temporary directory)."""
        await to_thread.run_sync(lambda: self._tmp.mkdir(parents=True, exist_ok=True))

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _temp(self) -> Path:
        return self._tmp / uuid.uuid4().hex

    def _place(self, temp: Path, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, target)

    async def put(self, key: str, chunks: AsyncIterator[bytes]) -> None:
        """Write the chunks to a temporary file, then rename it to the key's path."""
        self._path(key)
        temp = self._temp()
        try:
            handle: BinaryIO = await to_thread.run_sync(temp.open, "wb")
            try:
                async for chunk in chunks:
                    await to_thread.run_sync(handle.write, chunk)
                await to_thread.run_sync(handle.close)
                await to_thread.run_sync(self._place, temp, key)
            finally:
                handle.close()
                temp.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write a file: {exc.strerror}") from exc

    async def put_path(self, key: str, path: Path) -> None:
        """Copy a local file to a temporary file, then rename it to the key's path."""
        self._path(key)
        temp = self._temp()

        def copy() -> None:
            try:
                shutil.copyfile(path, temp)
                self._place(temp, key)
            finally:
                temp.unlink(missing_ok=True)

        try:
            await to_thread.run_sync(copy)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write a file: {exc.strerror}") from exc

    async def open(self, key: str) -> AsyncIterator[bytes]:
        """Open now (ObjectMissing before any byte), then read in chunks off the loop."""
        path = self._path(key)
        try:
            handle: BinaryIO = await to_thread.run_sync(path.open, "rb")
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc
        return _chunks_of(handle)

    async def delete(self, key: str) -> None:
        """Unlink the file (missing is fine)."""
        await to_thread.run_sync(lambda: self._path(key).unlink(missing_ok=True))

    async def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return await to_thread.run_sync(self._path(key).is_file)

    async def delete_prefix(self, prefix: str) -> None:
        """Remove the prefix's directory."""
        directory = self._path(prefix)
        await to_thread.run_sync(lambda: shutil.rmtree(directory, ignore_errors=True))

    async def aclose(self) -> None:
        """Nothing to release."""


async def _chunks_of(handle: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await to_thread.run_sync(handle.read, CHUNK_BYTES):
            yield chunk
    finally:
        handle.close()


def local_root(url: str) -> Path:
    """The directory of a `file://` URL."""
    return Path(url.removeprefix("file://"))
