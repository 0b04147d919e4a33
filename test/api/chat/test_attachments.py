"""Files attached to chat messages reach the models (API.md v1.1 "Files and attachments")."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
from PIL import Image

from test.api.chat.tree_helpers import history, post_stream
from test.api.files.helpers import upload
from test.fakes.llm_upstream import Reply
from test.support.assertions import assert_error
from test.support.files import blank_pdf, image, pdf
from test.support.sse import stream_chat, text_of


async def _file(client: httpx.AsyncClient, user: dict, name: str, data: bytes) -> dict[str, Any]:
    response = await upload(client, user, name, data)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def _photo(size: tuple[int, int], *, exif: bool = False) -> bytes:
    """A JPEG; with `exif`, one that carries a camera make (which must not reach a model)."""
    buffer = io.BytesIO()
    picture = Image.new("RGB", size, (10, 120, 200))
    if exif:
        tags = Image.Exif()
        tags[0x010F] = "SecretCam"  # Make
        picture.save(buffer, "JPEG", exif=tags.tobytes())
    else:
        picture.save(buffer, "JPEG")
    return buffer.getvalue()


def _decoded(url_or_data: str) -> Image.Image:
    raw = url_or_data.split(",", 1)[1] if url_or_data.startswith("data:") else url_or_data
    return Image.open(io.BytesIO(base64.b64decode(raw)))


async def test_echo_reports_a_pdf_and_an_image_and_history_shows_them(
    client: httpx.AsyncClient, alice: dict
) -> None:
    photo = await _file(client, alice, "photo.png", image("PNG", (800, 600)))
    report = await _file(client, alice, "report.pdf", pdf(["First page", "Second", "Third"]))
    events = await stream_chat(
        client,
        alice["headers"],
        message="What is this?",
        model="vektor-echo",
        attachments=[photo["id"], report["id"]],
    )
    chars = report["text_chars"]
    assert text_of(events) == (
        "Echo: What is this? Attachments: photo.png image 800x600; "
        f"report.pdf 3 pages, {chars:,} characters of text"
    )
    conversation = await history(client, alice["headers"], events[0].data["conversation_id"])
    question = conversation["messages"][0]
    assert [(a["id"], a["name"], a["kind"], a["deleted"]) for a in question["attachments"]] == [
        (photo["id"], "photo.png", "image", False),
        (report["id"], "report.pdf", "document", False),
    ]
    assert conversation["messages"][1]["attachments"] == []
    feed = (await client.get("/sync/changes", headers=alice["headers"])).json()
    synced = next(m for m in feed["messages"] if m["id"] == question["id"])
    assert [a["name"] for a in synced["attachments"]] == ["photo.png", "report.pdf"]


async def test_a_scanned_pdf_is_a_note_to_the_model(client: httpx.AsyncClient, alice: dict) -> None:
    scan = await _file(client, alice, "scan.pdf", blank_pdf(2))
    events = await stream_chat(
        client, alice["headers"], message="Read", model="vektor-echo", attachments=[scan["id"]]
    )
    assert text_of(events) == "Echo: Read Attachments: scan.pdf 2 pages, no text"


async def test_openai_request_carries_the_image_and_the_document_text(
    client: httpx.AsyncClient, alice: dict, upstream: Any
) -> None:
    photo = await _file(client, alice, "big.jpg", _photo((3000, 1000), exif=True))
    notes = await _file(client, alice, "notes.txt", b"The launch code is 4711.\n")
    long = await _file(client, alice, "long.txt", ("x" * 99 + "\n").encode() * 200)
    upstream.script(Reply.text("I see a blue picture."))
    events = await stream_chat(
        client,
        alice["headers"],
        message="Describe",
        model="fake-openai",
        attachments=[photo["id"], notes["id"], long["id"]],
    )
    assert text_of(events) == "I see a blue picture."
    content = upstream.requests[-1].json["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "Describe"}
    assert content[1]["type"] == "image_url"
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    sent = _decoded(url)
    assert sent.size == (2048, 683)  # long side cut to OpenAI's 2048
    assert "SecretCam" not in base64.b64decode(url.split(",", 1)[1]).decode("latin-1")
    assert not sent.getexif()
    assert content[2]["type"] == "text"
    assert "'notes.txt'" in content[2]["text"] and "The launch code is 4711." in content[2]["text"]
    # fake-openai: 4,000-token window, 500 reserved -> 7,000 characters for the 2 documents
    assert "[cut: 3,500 of 20,000 characters]" in content[3]["text"]


async def test_anthropic_request_carries_base64_image_blocks_and_text(
    client: httpx.AsyncClient, alice: dict, upstream: Any
) -> None:
    photo = await _file(client, alice, "wide.png", image("PNG", (2000, 500)))
    report = await _file(client, alice, "report.pdf", pdf(["Quarterly figures"]))
    upstream.script(Reply.text("A red image and a report."))
    events = await stream_chat(
        client,
        alice["headers"],
        message="Summarise",
        model="fake-anthropic",
        attachments=[photo["id"], report["id"]],
    )
    assert text_of(events) == "A red image and a report."
    blocks = upstream.requests[-1].json["messages"][-1]["content"]
    assert blocks[0] == {"type": "text", "text": "Summarise"}
    assert blocks[1]["type"] == "image"
    source = blocks[1]["source"]
    assert source["type"] == "base64" and source["media_type"] == "image/jpeg"
    assert _decoded(source["data"]).size == (1568, 392)  # Anthropic's 1568 px long side
    assert blocks[2]["type"] == "text"
    assert "'report.pdf'" in blocks[2]["text"] and "Quarterly figures" in blocks[2]["text"]


async def test_attachments_are_sent_again_on_later_turns(
    client: httpx.AsyncClient, alice: dict, upstream: Any
) -> None:
    notes = await _file(client, alice, "notes.txt", b"Remember the number 42.\n")
    upstream.script(Reply.text("Noted."), Reply.text("It was 42."))
    first = await stream_chat(
        client, alice["headers"], message="Keep", model="fake-openai", attachments=[notes["id"]]
    )
    cid = first[0].data["conversation_id"]
    await stream_chat(
        client, alice["headers"], message="Which?", model="fake-openai", conversation_id=cid
    )
    messages = upstream.requests[-1].json["messages"]
    assert "Remember the number 42." in messages[0]["content"][1]["text"]
    assert messages[-1] == {"role": "user", "content": "Which?"}


async def test_an_image_for_a_model_without_vision_is_400(
    client: httpx.AsyncClient, alice: dict
) -> None:
    photo = await _file(client, alice, "photo.png", image("PNG"))
    response = await client.post(
        "/chat/stream",
        json={"message": "Look", "model": "echo-blind", "attachments": [photo["id"]]},
        headers=alice["headers"],
    )
    assert_error(response, 400, "model_cannot_see_images")
    listed = (await client.get("/chat/models", headers=alice["headers"])).json()["items"]
    vision = {m["id"]: m["supports_vision"] for m in listed}
    assert vision["echo-blind"] is False and vision["fake-openai"] is True


async def test_another_users_file_or_an_unknown_id_is_404(
    client: httpx.AsyncClient, alice: dict, bob: dict
) -> None:
    theirs = await _file(client, bob, "bob.png", image("PNG"))
    for file_id in (theirs["id"], "00000000-0000-4000-8000-000000000000"):
        response = await client.post(
            "/chat/stream",
            json={"message": "Look", "model": "vektor-echo", "attachments": [file_id]},
            headers=alice["headers"],
        )
        assert_error(response, 404, "not_found")
    too_many = {"message": "x", "attachments": [theirs["id"]] * 11}
    response = await client.post("/chat/stream", json=too_many, headers=alice["headers"])
    assert response.status_code == 422


async def test_a_deleted_file_stays_in_history_and_regenerate_keeps_attachments(
    client: httpx.AsyncClient, alice: dict
) -> None:
    photo = await _file(client, alice, "photo.png", image("PNG", (64, 48)))
    events = await stream_chat(
        client, alice["headers"], message="See", model="vektor-echo", attachments=[photo["id"]]
    )
    cid, answer = events[0].data["conversation_id"], events[0].data["message_id"]
    regenerated = await post_stream(
        client, f"/chat/messages/{answer}/regenerate", alice["headers"], {}
    )
    assert text_of(regenerated) == "Echo: See Attachments: photo.png image 64x48"
    deleted = await client.delete(f"/files/{photo['id']}", headers=alice["headers"])
    assert deleted.status_code == 204
    question = (await history(client, alice["headers"], cid))["messages"][0]
    assert question["attachments"][0]["name"] == "photo.png"
    assert question["attachments"][0]["deleted"] is True
    again = await post_stream(client, f"/chat/messages/{answer}/regenerate", alice["headers"], {})
    assert text_of(again) == "Echo: See Attachments: photo.png (deleted)"


async def test_edit_keeps_or_replaces_the_attachments(
    client: httpx.AsyncClient, alice: dict
) -> None:
    photo = await _file(client, alice, "photo.png", image("PNG", (20, 10)))
    notes = await _file(client, alice, "n.txt", b"hello there\n")
    events = await stream_chat(
        client, alice["headers"], message="A", model="vektor-echo", attachments=[photo["id"]]
    )
    question = events[0].data["user_message_id"]
    path = f"/chat/messages/{question}/edit"
    kept = await post_stream(client, path, alice["headers"], {"content": "B"})
    assert text_of(kept) == "Echo: B Attachments: photo.png image 20x10"
    swapped = await post_stream(
        client, path, alice["headers"], {"content": "C", "attachments": [notes["id"]]}
    )
    assert text_of(swapped) == "Echo: C Attachments: n.txt 12 characters of text"
    none = await post_stream(client, path, alice["headers"], {"content": "D", "attachments": []})
    assert text_of(none) == "Echo: D"


async def test_backup_round_trip_restores_files_and_attachments(
    client: httpx.AsyncClient, alice: dict, bob: dict
) -> None:
    picture = image("PNG", (30, 20))
    photo = await _file(client, alice, "photo.png", picture)
    report = await _file(client, alice, "report.pdf", pdf(["Backed up"]))
    await stream_chat(
        client,
        alice["headers"],
        message="Keep these",
        model="vektor-echo",
        attachments=[photo["id"], report["id"]],
    )
    exported = await client.get("/sync/export", headers=alice["headers"])
    doc = exported.json()
    assert doc["version"] == 3
    files = {f["name"]: f for f in doc["files"]}
    assert base64.b64decode(files["photo.png"]["data"]) == picture
    assert files["report.pdf"]["sha256"] == report["sha256"]

    tampered = {**doc, "files": [{**doc["files"][0], "data": base64.b64encode(b"x").decode()}]}
    refused = await client.post("/sync/import", json=tampered, headers=bob["headers"])
    assert_error(refused, 422, "invalid_backup")
    assert (await client.get("/files", headers=bob["headers"])).json()["items"] == []

    imported = await client.post("/sync/import", json=doc, headers=bob["headers"])
    assert imported.status_code == 200, imported.text
    theirs = (await client.get("/files", headers=bob["headers"])).json()["items"]
    assert sorted(f["sha256"] for f in theirs) == sorted([photo["sha256"], report["sha256"]])
    by_name = {f["name"]: f["id"] for f in theirs}
    content = await client.get(f"/files/{by_name['photo.png']}/content", headers=bob["headers"])
    assert content.content == picture
    cid = (await client.get("/chat/history", headers=bob["headers"])).json()["items"][0]["id"]
    question = (await history(client, bob["headers"], cid))["messages"][0]
    assert [(a["id"], a["deleted"]) for a in question["attachments"]] == [
        (by_name["photo.png"], False),
        (by_name["report.pdf"], False),
    ]
