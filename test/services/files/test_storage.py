"""The storage backends below the API: keys, atomic writes, missing objects, a store that is
down (local directory and moto's S3 server)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from app.services.files.s3 import S3Storage, parse_s3_url
from app.services.files.storage import (
    LocalStorage,
    ObjectMissing,
    StorageUnavailable,
    check_key,
)
from test.support.net import free_port
from test.support.s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Server, moto_s3

KEY = f"{uuid.uuid4()}/{uuid.uuid4()}"


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _read(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


@pytest.mark.parametrize(
    "key",
    [
        "../etc/passwd",
        f"{uuid.uuid4()}/../../x",
        "/abs/path",
        f"{uuid.uuid4()}/{uuid.uuid4()}.exe",
        f"{uuid.uuid4()}\x00",
        "",
        f"{uuid.uuid4()}/{uuid.uuid4()}/{uuid.uuid4()}",
    ],
)
def test_only_keys_made_of_ids_are_taken(key: str) -> None:
    with pytest.raises(ValueError, match="not a storage key"):
        check_key(key)


def test_keys_of_the_service_are_taken() -> None:
    user, file = uuid.uuid4(), uuid.uuid4()
    for key in (str(user), f"{user}/{file}", f"{user}/{file}.txt"):
        assert check_key(key) == key


def test_s3_urls() -> None:
    assert parse_s3_url("s3://bucket/some/prefix/") == ("bucket", "some/prefix/")
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    with pytest.raises(ValueError):
        parse_s3_url("s3:///prefix")


async def test_local_storage_round_trip(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    await storage.start()
    await storage.put(KEY, _chunks(b"hello ", b"world"))
    assert await storage.exists(KEY)
    assert await _read(await storage.open(KEY)) == b"hello world"
    source = tmp_path / "source"
    source.write_bytes(b"x" * 1_000_000)
    await storage.put_path(KEY, source)  # replaces
    assert await _read(await storage.open(KEY)) == b"x" * 1_000_000
    assert source.exists()  # the caller's file is left alone
    assert list((tmp_path / "files" / ".tmp").iterdir()) == []  # no temporary file left
    await storage.delete(KEY)
    await storage.delete(KEY)  # missing is fine
    assert not await storage.exists(KEY)
    with pytest.raises(ObjectMissing):
        await storage.open(KEY)


async def test_local_write_that_fails_leaves_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    await storage.start()

    async def broken() -> AsyncIterator[bytes]:
        yield b"half"
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        await storage.put(KEY, broken())
    assert not await storage.exists(KEY)
    assert list((tmp_path / "files" / ".tmp").iterdir()) == []


async def test_local_disk_failure_is_storage_unavailable(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    await storage.start()
    (tmp_path / "files" / KEY.split("/")[0]).write_text("a file where a directory must be")
    with pytest.raises(StorageUnavailable):
        await storage.put(KEY, _chunks(b"x"))


async def test_delete_prefix_removes_one_users_objects(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    await storage.start()
    mine, other = uuid.uuid4(), uuid.uuid4()
    for user in (mine, other):
        await storage.put(f"{user}/{uuid.uuid4()}", _chunks(b"x"))
    await storage.delete_prefix(str(mine))
    assert not (tmp_path / "files" / str(mine)).exists()
    assert len(list((tmp_path / "files" / str(other)).iterdir())) == 1


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """moto's S3 server for this module."""
    with moto_s3("storage-tests") as server:
        yield server


def _s3_storage(endpoint: str, bucket: str = "storage-tests") -> S3Storage:
    return S3Storage(
        f"s3://{bucket}/p",
        endpoint_url=endpoint,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )


async def test_s3_round_trip_and_prefix_delete(s3: S3Server, tmp_path: Path) -> None:
    storage = _s3_storage(s3.endpoint)
    await storage.start()
    try:
        source = tmp_path / "big"
        source.write_bytes(b"y" * 3_000_000)
        await storage.put_path(KEY, source)
        await storage.put(f"{KEY}.txt", _chunks(b"a", b"b"))
        assert s3.object_keys("p/") == {f"p/{KEY}", f"p/{KEY}.txt"}
        assert await _read(await storage.open(KEY)) == b"y" * 3_000_000
        assert await storage.exists(f"{KEY}.txt")
        await storage.delete_prefix(KEY.split("/")[0])
        assert s3.object_keys() == set()
        with pytest.raises(ObjectMissing):
            await storage.open(KEY)
        assert not await storage.exists(KEY)
    finally:
        await storage.aclose()


async def test_s3_down_or_refusing_is_storage_unavailable(s3: S3Server) -> None:
    for storage in (
        _s3_storage(f"http://127.0.0.1:{free_port()}"),  # nothing listens
        _s3_storage(s3.endpoint, bucket="no-such-bucket"),  # the store refuses
    ):
        await storage.start()
        try:
            with pytest.raises(StorageUnavailable):
                await storage.put(KEY, _chunks(b"x"))
        finally:
            await storage.aclose()
