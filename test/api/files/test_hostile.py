"""Hostile uploads, size limit and quota: each a clear 4xx, and nothing stored or left over
(on local storage and on S3)."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from app.api import deps
from app.api.deps import SessionDep, StateDep
from app.services.files import FileService, upload_limits
from app.services.files.storage import StorageUnavailable
from test.api.files.conftest import MAX_UPLOAD, QUOTA, Backend
from test.api.files.helpers import as_separate_workers, upload
from test.support import files as make
from test.support.apps import serve_app
from test.support.assertions import assert_error
from test.support.logs import read_logs
from test.support.waiting import eventually


def _plain_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return buffer.getvalue()


def _not_office() -> bytes:
    """A ZIP with a `[Content_Types].xml` that declares no Word or Excel main part."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types><Default Extension='xml'/></Types>")
    return buffer.getvalue()


BOMB = 50 * 1024 * 1024  # zeros: deflated about 1000:1, well under the upload limit
# name sent, bytes, status, code
HOSTILE = [
    ("pixel bomb", "huge.png", make.pixel_bomb_png, 413, "file_too_large"),
    (
        "zip bomb docx",
        "bomb.docx",
        lambda: make.with_member(make.word(["x"]), "word/media/bomb.bin", BOMB),
        413,
        "file_too_large",
    ),
    (
        "zip bomb xlsx",
        "bomb.xlsx",
        lambda: make.with_member(make.spreadsheet({"a": [[1]]}), "xl/bomb.xml", BOMB),
        413,
        "file_too_large",
    ),
    ("5000 pages", "long.pdf", lambda: make.blank_pdf(5000), 413, "file_too_large"),
    ("exe as jpeg", "photo.jpg", make.windows_exe, 415, "unsupported_file_type"),
    ("random bytes", "data.bin", lambda: bytes(range(256)) * 64, 415, "unsupported_file_type"),
    ("empty", "empty.txt", lambda: b"", 415, "unsupported_file_type"),
    ("text with NUL", "nul.txt", lambda: b"abc\x00def\n", 415, "unsupported_file_type"),
    ("latin-1 text", "old.txt", lambda: "café".encode("latin-1"), 415, "unsupported_file_type"),
    ("plain zip", "archive.docx", _plain_zip, 415, "unsupported_file_type"),
    ("other office zip", "slides.docx", _not_office, 415, "unsupported_file_type"),
    ("broken jpeg", "b.jpg", lambda: b"\xff\xd8\xff\xe0" + b"junk" * 200, 422, "unreadable_file"),
    ("broken pdf", "b.pdf", lambda: b"%PDF-1.4\nnot really\n", 422, "unreadable_file"),
    (
        "truncated png",
        "t.png",
        lambda: make.image("PNG", (300, 300))[:200],
        422,
        "unreadable_file",
    ),
]


def _assert_nothing_stored(backend: Backend) -> None:
    assert backend.keys() == set()
    assert backend.leftovers() == []


async def _assert_no_files(backend: Backend, user: dict[str, Any]) -> None:
    listed = await backend.client.get("/files", headers=user["headers"])
    assert listed.json()["items"] == []
    _assert_nothing_stored(backend)


@pytest.mark.parametrize(
    ("name", "build", "status", "code"),
    [row[1:] for row in HOSTILE],
    ids=[row[0] for row in HOSTILE],
)
async def test_hostile_file_is_refused_and_nothing_stored(
    backend: Backend, alice: dict[str, Any], name: str, build: Any, status: int, code: str
) -> None:
    response = await upload(backend.client, alice, name, build(), "image/jpeg")
    assert_error(response, status, code)
    await _assert_no_files(backend, alice)


@pytest.mark.parametrize(
    "name",
    [
        b"../../etc/passwd",
        b"..",
        b"dir/file.txt",
        b"..\\..\\win.ini",
        b"a\x00b.txt",
        b"nul\x00",
        b"tab\tname.txt",
        "photo\u202egpj.exe".encode(),  # right-to-left override: shows as "photoexe.jpg"
        ("x" * 256 + ".txt").encode(),
        b"\xff\xfe.txt",  # not UTF-8
        b"   ",
    ],
    ids=[
        "parent dirs",
        "dot dot",
        "slash",
        "backslash",
        "NUL inside",
        "NUL at end",
        "control",
        "bidi override",
        "very long",
        "not utf-8",
        "blank",
    ],
)
async def test_path_tricks_in_names_are_refused(
    backend: Backend, alice: dict[str, Any], name: bytes
) -> None:
    response = await upload(backend.client, alice, name, b"hello\n")
    assert_error(response, 422, "invalid_file_name")
    await _assert_no_files(backend, alice)


async def test_a_windows_full_path_keeps_only_its_last_part(
    backend: Backend, alice: dict[str, Any]
) -> None:
    """Old browsers send `C:\\Users\\x\\report.txt`; the multipart parser keeps `report.txt`."""
    response = await upload(backend.client, alice, b"C:\\\\Users\\\\x\\\\report.txt", b"hi\n")
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "report.txt"


async def test_a_long_unicode_name_within_255_characters_is_kept(
    backend: Backend, alice: dict[str, Any]
) -> None:
    name = "é" * 250 + ".txt"  # 254 characters, 504 bytes
    response = await upload(backend.client, alice, name, b"hello\n")
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name


async def test_over_the_size_limit_is_refused_before_reading(
    backend: Backend, alice: dict[str, Any]
) -> None:
    response = await upload(backend.client, alice, "big.txt", b"a" * (MAX_UPLOAD + 1))
    assert_error(response, 413, "file_too_large")
    await _assert_no_files(backend, alice)


async def test_over_the_size_limit_while_streaming(backend: Backend, alice: dict[str, Any]) -> None:
    """No Content-Length (chunked): the reader counts and stops past the limit."""
    body, headers = make.multipart("big.txt", b"a" * (MAX_UPLOAD + 1))
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for start in range(0, len(body), 64 * 1024):
            sent += 1
            yield body[start : start + 64 * 1024]

    response = await backend.client.post(
        "/files", content=chunks(), headers={**alice["headers"], **headers}
    )
    assert_error(response, 413, "file_too_large")
    assert "content-length" not in response.request.headers
    await _assert_no_files(backend, alice)


async def test_exactly_the_size_limit_is_taken(backend: Backend, alice: dict[str, Any]) -> None:
    response = await upload(backend.client, alice, "big.txt", b"a" * MAX_UPLOAD)
    assert response.status_code == 201, response.text
    assert response.json()["size"] == MAX_UPLOAD


async def test_storage_quota(backend: Backend, alice: dict[str, Any], bob: dict[str, Any]) -> None:
    part = 5 * MAX_UPLOAD // 6  # 2.5 MiB; the quota (6.5 MiB) holds two of them, not three
    assert 2 * part <= QUOTA < 3 * part
    for letter in "ab":
        response = await upload(backend.client, alice, f"{letter}.txt", letter.encode() * part)
        assert response.status_code == 201, response.text
    kept = backend.keys()
    response = await upload(backend.client, alice, "c.txt", b"c" * part)
    assert_error(response, 413, "storage_quota_exceeded")
    assert backend.keys() == kept and backend.leftovers() == []
    # identical bytes take no room: still accepted (the existing file)
    again = await upload(backend.client, alice, "a again.txt", b"a" * part)
    assert again.status_code == 200
    # the quota is per user
    assert (await upload(backend.client, bob, "c.txt", b"c" * part)).status_code == 201
    # deleting makes room
    listed = (await backend.client.get("/files", headers=alice["headers"])).json()["items"]
    await backend.client.delete(f"/files/{listed[0]['id']}", headers=alice["headers"])
    assert (await upload(backend.client, alice, "c.txt", b"c" * part)).status_code == 201


async def test_not_multipart_and_no_file_field(backend: Backend, alice: dict[str, Any]) -> None:
    response = await backend.client.post(
        "/files", content=b"hello", headers={**alice["headers"], "Content-Type": "text/plain"}
    )
    assert_error(response, 400, "bad_request")
    response = await backend.client.post(
        "/files", data={"other": "x"}, files={"x": ("a.txt", b"hi")}, headers=alice["headers"]
    )
    assert_error(response, 422, "validation_error")
    response = await backend.client.post(
        "/files",
        data={"file": "not a file"},
        files={"x": ("a.txt", b"hi")},
        headers=alice["headers"],
    )
    assert_error(response, 422, "validation_error")
    two = await backend.client.post(
        "/files",
        files=[("file", ("a.txt", b"one\n")), ("file", ("b.txt", b"two\n"))],
        headers=alice["headers"],
    )
    assert_error(two, 422, "validation_error")
    cut = b'--abc\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhel'
    response = await backend.client.post(
        "/files",
        content=cut,
        headers={**alice["headers"], "Content-Type": "multipart/form-data; boundary=abc"},
    )
    assert response.status_code in (400, 422), response.text
    await _assert_no_files(backend, alice)


async def test_two_uploads_at_once_cannot_both_pass_the_quota(
    backend: Backend, alice: dict[str, Any]
) -> None:
    import asyncio

    part = 5 * MAX_UPLOAD // 6
    assert (await upload(backend.client, alice, "a.txt", b"a" * part)).status_code == 201
    # one more fits, two do not: whichever commits second is refused
    with as_separate_workers(backend.app):
        b, c = await asyncio.gather(
            upload(backend.client, alice, "b.txt", b"b" * part),
            upload(backend.client, alice, "c.txt", b"c" * part),
        )
    assert sorted([b.status_code, c.status_code]) == [201, 413], (b.text, c.text)
    refused = b if b.status_code == 413 else c
    assert_error(refused, 413, "storage_quota_exceeded")
    listed = (await backend.client.get("/files", headers=alice["headers"])).json()["items"]
    assert len(listed) == 2 and len(backend.keys()) == 2
    assert backend.leftovers() == []


class _StoreDown:
    """A store that answers nothing (a full disk, an S3 outage)."""

    kind = "down"

    async def put(self, key: str, chunks: Any) -> None:
        raise StorageUnavailable("down")

    async def put_path(self, key: str, path: Any) -> None:
        raise StorageUnavailable("down")

    async def open(self, key: str) -> Any:
        raise StorageUnavailable("down")

    async def delete(self, key: str) -> None:
        raise StorageUnavailable("down")


async def test_a_store_that_is_down_is_503_and_nothing_is_kept(
    backend: Backend, alice: dict[str, Any]
) -> None:
    created = (await upload(backend.client, alice, "kept.txt", b"kept\n")).json()

    async def broken(state: StateDep, session: SessionDep) -> FileService:
        return FileService(
            session=session, storage=cast(Any, _StoreDown()), limits=upload_limits(state.settings)
        )

    backend.app.dependency_overrides[deps.get_file_service] = broken
    try:
        response = await upload(backend.client, alice, "new.txt", b"new\n")
        assert_error(response, 503, "storage_unavailable")
        download = await backend.client.get(
            f"/files/{created['id']}/content", headers=alice["headers"]
        )
        assert_error(download, 503, "storage_unavailable")
        # deleting still works: the row goes, the orphaned bytes go with the account
        gone = await backend.client.delete(f"/files/{created['id']}", headers=alice["headers"])
        assert gone.status_code == 204
    finally:
        backend.app.dependency_overrides.pop(deps.get_file_service)
    listed = (await backend.client.get("/files", headers=alice["headers"])).json()["items"]
    assert listed == []
    assert backend.leftovers() == []


async def test_a_client_that_hangs_up_mid_upload_leaves_nothing(
    backend: Backend, alice: dict[str, Any], log_dir: Path
) -> None:
    """Over a real socket: the body stops half way and the connection closes."""
    errors_before = (log_dir / "error.log").read_text() if (log_dir / "error.log").exists() else ""
    body, headers = make.multipart("half.txt", b"a" * 600_000)
    async with serve_app(backend.app) as url:
        host, port = url.removeprefix("http://").split(":")
        _reader, writer = await asyncio.open_connection(host, int(port))
        head = (
            f"POST /files HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: {alice['headers']['Authorization']}\r\n"
            f"Content-Type: {headers['Content-Type']}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body[:300_000])
        await writer.drain()
        await eventually(lambda: bool(backend.leftovers()), what="the upload being received")
        writer.close()
        await writer.wait_closed()
        await eventually(lambda: not backend.leftovers(), what="the partial upload removed")
    await _assert_no_files(backend, alice)
    await read_logs(log_dir)  # wait for the sinks
    errors_after = (log_dir / "error.log").read_text() if (log_dir / "error.log").exists() else ""
    assert "ClientDisconnect" not in errors_after[len(errors_before) :]
