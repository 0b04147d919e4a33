"""`/files` on local storage and on S3: each supported type, dedupe, download, list, delete."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest

from app.services.files import FileService, upload_limits
from test.api.files.conftest import Backend
from test.api.files.helpers import as_separate_workers, upload
from test.support import files as make
from test.support.assertions import assert_error
from test.support.auth import TEST_PASSWORD

FILE_FIELDS = {
    "id",
    "name",
    "content_type",
    "size",
    "sha256",
    "kind",
    "pages",
    "width",
    "height",
    "has_text",
    "text_chars",
    "created_at",
}
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# name, bytes, what the server must decide: content_type, kind, pages, (width, height), has_text
SUPPORTED = [
    ("photo.png", lambda: make.image("PNG"), "image/png", "image", None, (40, 30), False),
    ("photo.jpg", lambda: make.image("JPEG"), "image/jpeg", "image", None, (40, 30), False),
    ("photo.webp", lambda: make.image("WEBP"), "image/webp", "image", None, (40, 30), False),
    ("anim.gif", make.animated_gif, "image/gif", "image", None, (16, 8), False),
    (
        "report.pdf",
        lambda: make.pdf(["Hello PDF", "Second page"]),
        "application/pdf",
        "document",
        2,
        None,
        True,
    ),
    ("scan.pdf", lambda: make.blank_pdf(3), "application/pdf", "document", 3, None, False),
    ("letter.docx", lambda: make.word(["Dear reader", "Bye"]), DOCX, "document", None, None, True),
    (
        "table.xlsx",
        lambda: make.spreadsheet({"Data": [["a", "b"], [1, 2.5]], "More": [["x"]]}),
        XLSX,
        "document",
        None,
        None,
        True,
    ),
    ("data.csv", lambda: b"a,b\n1,2\n", "text/csv", "text", None, None, True),
    ("notes.md", lambda: "# Notes\n\n*café*\n".encode(), "text/markdown", "text", None, None, True),
    ("main.py", lambda: b"def f():\n\treturn 1\n", "text/plain", "text", None, None, True),
]


@pytest.mark.parametrize(
    ("name", "build", "content_type", "kind", "pages", "size", "has_text"),
    SUPPORTED,
    ids=[row[0] for row in SUPPORTED],
)
async def test_upload_each_supported_type(
    backend: Backend,
    alice: dict[str, Any],
    name: str,
    build: Any,
    content_type: str,
    kind: str,
    pages: int | None,
    size: tuple[int, int] | None,
    has_text: bool,
) -> None:
    data = build()
    # the client's header says HTML: the server decides from the bytes
    response = await upload(backend.client, alice, name, data, "text/html")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == FILE_FIELDS
    assert body["name"] == name
    assert (body["content_type"], body["kind"], body["pages"]) == (content_type, kind, pages)
    assert (body["width"], body["height"]) == (size or (None, None))
    assert body["has_text"] is has_text
    assert body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    owner = alice["user"]["id"]
    stored = {f"{owner}/{body['id']}"} | (
        {f"{owner}/{body['id']}.txt"} if kind == "document" else set()
    )
    assert backend.keys() == stored
    assert backend.leftovers() == []


async def _text_of(backend: Backend, user: dict[str, Any], file_id: str) -> str:
    async with backend.state.session_factory() as session:
        service = FileService(
            session=session,
            storage=backend.state.file_storage,
            limits=upload_limits(backend.state.settings),
        )
        return await service.text(user_id=uuid.UUID(user["user"]["id"]), file_id=uuid.UUID(file_id))


async def test_extracted_text_is_stored_beside_the_file(
    backend: Backend, alice: dict[str, Any]
) -> None:
    uploads = {
        "report.pdf": make.pdf(["Hello PDF", "Second page"]),
        "letter.docx": make.word(["Dear reader"]),
        "table.xlsx": make.spreadsheet({"Data": [["a", "b"], [1, 2.5]]}),
        "notes.md": b"# Notes\n",
        "scan.pdf": make.blank_pdf(2),
        "photo.png": make.image("PNG"),
    }
    texts = {}
    for name, data in uploads.items():
        response = await upload(backend.client, alice, name, data)
        assert response.status_code == 201, response.text
        texts[name] = await _text_of(backend, alice, response.json()["id"])
        assert response.json()["text_chars"] == len(texts[name])
    assert texts["report.pdf"].startswith("[page 1]\nHello PDF")
    assert "[page 2]\nSecond page" in texts["report.pdf"]
    assert "Dear reader" in texts["letter.docx"] and "cell 00\tcell 01" in texts["letter.docx"]
    assert texts["table.xlsx"].splitlines()[:3] == ["# Sheet: Data", "a,b", "1,2.5"]
    assert texts["notes.md"] == "# Notes\n"
    assert texts["scan.pdf"].replace("\n", "") == "[page 1][page 2]"  # pages, no text
    assert texts["photo.png"] == ""


async def test_same_bytes_are_stored_once(backend: Backend, alice: dict[str, Any]) -> None:
    data = make.image("PNG")
    first = await upload(backend.client, alice, "a.png", data)
    second = await upload(backend.client, alice, "copy of a.png", data)
    assert first.status_code == 201 and second.status_code == 200, second.text
    assert second.json() == first.json()  # the existing file, its name included
    assert len(backend.keys()) == 1
    listed = await backend.client.get("/files", headers=alice["headers"])
    assert [item["id"] for item in listed.json()["items"]] == [first.json()["id"]]


async def test_same_bytes_of_two_users_are_two_files(
    backend: Backend, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    data = b"shared notes\n"
    a = await upload(backend.client, alice, "n.txt", data)
    b = await upload(backend.client, bob, "n.txt", data)
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert len(backend.keys()) == 2


async def test_download_is_the_original_bytes_as_an_attachment(
    backend: Backend, alice: dict[str, Any]
) -> None:
    data = make.image("PNG")
    created = await upload(backend.client, alice, 'résumé 2024 "final".png', data, "text/html")
    file_id = created.json()["id"]
    response = await backend.client.get(f"/files/{file_id}/content", headers=alice["headers"])
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-length"] == str(len(data))
    disposition = response.headers["content-disposition"]
    assert disposition == (
        'attachment; filename="r_sum_ 2024 _final_.png"; '
        "filename*=UTF-8''r%C3%A9sum%C3%A9%202024%20%22final%22.png"
    )


async def test_text_download_is_never_rendered(backend: Backend, alice: dict[str, Any]) -> None:
    page = b"<html><script>alert(1)</script></html>\n"
    created = await upload(backend.client, alice, "page.html", page, "text/html")
    assert created.json()["content_type"] == "text/plain"
    response = await backend.client.get(
        f"/files/{created.json()['id']}/content", headers=alice["headers"]
    )
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == page


async def test_list_pages_newest_first(backend: Backend, alice: dict[str, Any]) -> None:
    ids = []
    for i in range(5):
        response = await upload(backend.client, alice, f"n{i}.txt", f"note {i}\n".encode())
        ids.append(response.json()["id"])
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await backend.client.get("/files", params=params, headers=alice["headers"])).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
    assert cursor is None
    assert seen == list(reversed(ids))
    bad = await backend.client.get("/files", params={"cursor": "nope"}, headers=alice["headers"])
    assert_error(bad, 400, "invalid_cursor")


async def test_read_one_file(backend: Backend, alice: dict[str, Any]) -> None:
    created = (await upload(backend.client, alice, "a.csv", b"x,y\n")).json()
    response = await backend.client.get(f"/files/{created['id']}", headers=alice["headers"])
    assert response.status_code == 200 and response.json() == created


async def test_delete_removes_row_and_bytes(backend: Backend, alice: dict[str, Any]) -> None:
    created = (await upload(backend.client, alice, "r.pdf", make.pdf(["x"]))).json()
    assert len(backend.keys()) == 2  # the PDF and its text
    response = await backend.client.delete(f"/files/{created['id']}", headers=alice["headers"])
    assert response.status_code == 204
    assert backend.keys() == set()
    again = await backend.client.get(f"/files/{created['id']}", headers=alice["headers"])
    assert_error(again, 404, "not_found")
    twice = await backend.client.delete(f"/files/{created['id']}", headers=alice["headers"])
    assert_error(twice, 404, "not_found")
    # the same bytes can be uploaded again
    assert (await upload(backend.client, alice, "r.pdf", make.pdf(["x"]))).status_code == 201


async def test_another_users_file_is_404_everywhere(
    backend: Backend, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    created = (await upload(backend.client, alice, "a.txt", b"private\n")).json()
    for file_id in (created["id"], str(uuid.uuid4())):
        for method, path in (
            ("GET", f"/files/{file_id}"),
            ("GET", f"/files/{file_id}/content"),
            ("DELETE", f"/files/{file_id}"),
        ):
            response = await backend.client.request(method, path, headers=bob["headers"])
            assert_error(response, 404, "not_found")
    listed = await backend.client.get("/files", headers=bob["headers"])
    assert listed.json() == {"items": [], "next_cursor": None}
    assert len(backend.keys()) == 1  # still there


async def test_files_need_a_login(backend: Backend) -> None:
    assert_error(await backend.client.get("/files"), 401, "not_authenticated")
    body, headers = make.multipart("a.txt", b"x\n")
    response = await backend.client.post("/files", content=body, headers=headers)
    assert_error(response, 401, "not_authenticated")
    assert backend.keys() == set()


async def test_storage_bytes_and_account_deletion(
    backend: Backend, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    sizes = [len(d) for d in (b"one\n", b"two two\n")]
    for i, data in enumerate((b"one\n", b"two two\n")):
        assert (await upload(backend.client, alice, f"{i}.txt", data)).status_code == 201
    kept = (await upload(backend.client, bob, "b.txt", b"bob's\n")).json()
    async with backend.state.session_factory() as session:
        service = FileService(
            session=session,
            storage=backend.state.file_storage,
            limits=upload_limits(backend.state.settings),
        )
        assert await service.storage_bytes(user_id=uuid.UUID(alice["user"]["id"])) == sum(sizes)
    response = await backend.client.request(
        "DELETE", "/users/me", json={"password": TEST_PASSWORD}, headers=alice["headers"]
    )
    assert response.status_code == 204
    assert backend.keys() == {f"{bob['user']['id']}/{kept['id']}"}


async def test_s3_settings_are_secrets(
    file_backends: dict[str, Backend], alice: dict[str, Any], log_dir: Any
) -> None:
    """The endpoint URL and the keys reach the S3 client only: not the info, health or status
    answers, not the logs (botocore's debug lines would carry them)."""
    from test.support.logs import read_logs
    from test.support.s3_server import ACCESS_KEY, SECRET_KEY

    s3 = file_backends["s3"]
    before = {name: len(text) for name, text in (await read_logs(log_dir)).items()}
    created = await upload(s3.client, alice, "a.txt", b"hello\n")
    assert created.status_code == 201
    fid = created.json()["id"]
    assert (await s3.client.get(f"/files/{fid}/content", headers=alice["headers"])).is_success
    endpoint = s3.state.settings.s3_endpoint_url
    assert endpoint is not None
    secrets = (ACCESS_KEY, SECRET_KEY, endpoint.get_secret_value())
    info = await s3.client.get("/api/info")
    assert "files_s3" in info.json()["capabilities"]
    answers = [info.text, *[(await s3.client.get(p)).text for p in ("/health", "/api/status")]]
    logged = [text[before[name] :] for name, text in (await read_logs(log_dir)).items()]
    assert any("POST /files 201" in text for text in logged)  # the lines were read
    for text in [*answers, *logged]:
        for secret in secrets:
            assert secret not in text


async def test_the_same_bytes_twice_at_once_are_one_file(
    backend: Backend, alice: dict[str, Any]
) -> None:
    import asyncio

    data = make.pdf(["at once"])
    with as_separate_workers(backend.app):
        first, second = await asyncio.gather(
            upload(backend.client, alice, "a.pdf", data),
            upload(backend.client, alice, "b.pdf", data),
        )
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert first.json()["id"] == second.json()["id"]
    assert len(backend.keys()) == 2  # one PDF and its text; the loser's objects were removed
    assert backend.leftovers() == []


async def test_an_admin_deleting_an_account_deletes_its_files(
    backend: Backend, alice: dict[str, Any], bob: dict[str, Any]
) -> None:
    from test.support.auth import make_admin

    assert (await upload(backend.client, alice, "a.txt", b"alice's\n")).status_code == 201
    kept = (await upload(backend.client, bob, "b.txt", b"bob's\n")).json()
    await make_admin(backend.state, bob["user"]["id"])
    response = await backend.client.delete(
        f"/admin/users/{alice['user']['id']}", headers=bob["headers"]
    )
    assert response.status_code == 204
    assert backend.keys() == {f"{bob['user']['id']}/{kept['id']}"}
