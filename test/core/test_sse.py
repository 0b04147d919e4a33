"""The one SSE encoder: the exact bytes chat and sync streams send."""

from __future__ import annotations

import typing
import uuid

from app.core.sse import (
    PING_FRAME,
    SSE_HEADERS,
    decode_frame,
    encode_event,
    encode_sse,
    last_id_of,
    retry_frame,
)
from app.core.status import MessageStatus
from app.schemas.chat import MessageRead
from app.schemas.events import FinishReason, SnapshotEvent
from app.schemas.sync import BackupMessage
from app.services.chat.events import encode_frame, shutdown_frame
from app.services.sync.stream import REVOKED_FRAME, changed_frame
from app.services.sync.stream import shutdown_frame as sync_shutdown_frame


def test_chat_frames_are_compact_utf8_json_with_an_id() -> None:
    frame = encode_frame(7, "delta", {"content": "é\n"})
    assert frame == b'event: delta\nid: 7\ndata: {"content":"\xc3\xa9\\n"}\n\n'
    assert decode_frame(frame) == ("delta", {"content": "é\n"})


def test_enums_encode_as_their_values() -> None:
    done = encode_frame(2, "done", {"message_id": "m", "finish_reason": FinishReason.TOOL_LIMIT})
    assert done == b'event: done\nid: 2\ndata: {"message_id":"m","finish_reason":"tool_limit"}\n\n'
    snapshot: SnapshotEvent = {
        "message_id": "m",
        "content": "",
        "reasoning": None,
        "tool_calls": None,
        "status": MessageStatus.STREAMING,
    }
    assert decode_frame(encode_event("snapshot", snapshot))[1]["status"] == "streaming"


def test_frames_without_an_id_and_keep_alives() -> None:
    assert encode_sse("x", "{}") == b"event: x\ndata: {}\n\n"
    assert encode_event("x", {"a": 1}, event_id=0) == b'event: x\nid: 0\ndata: {"a":1}\n\n'
    assert PING_FRAME == b": ping\n\n"
    assert retry_frame(3000) == b"retry: 3000\n\n"
    assert SSE_HEADERS == {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def test_sync_frames_keep_their_bytes() -> None:
    assert REVOKED_FRAME == (
        b'event: error\ndata: {"code": "token_revoked", "message": "Session has been revoked"}\n\n'
    )
    assert sync_shutdown_frame(None) == (
        b'event: error\ndata: {"code": "server_shutdown", "message": "The server is restarting; '
        b'reconnect (re-attach) to continue."}\n\n'
    )
    frame = changed_frame(user_id=uuid.UUID(int=1), seq=42)
    assert frame.startswith(b'event: changed\nid: 42\ndata: {"cursor": "') and frame.endswith(
        b'"}\n\n'
    )


def test_the_chat_shutdown_frame_carries_the_last_id_sent() -> None:
    sent = encode_frame(4, "delta", {"content": "a"}) + encode_frame(5, "delta", {"content": "b"})
    assert last_id_of(sent, 0) == 5
    assert shutdown_frame(sent, after=2).startswith(b"event: error\nid: 5\n")
    assert shutdown_frame(None, after=2).startswith(b"event: error\nid: 2\n")
    assert decode_frame(shutdown_frame(None, after=2))[1]["code"] == "server_shutdown"


def test_statuses_are_the_stored_strings_and_the_api_literals() -> None:
    assert [s.value for s in MessageStatus] == [
        "complete",
        "streaming",
        "cancelled",
        "error",
        "awaiting_approval",
    ]
    assert MessageStatus.COMPLETE == "complete" and f"{MessageStatus.ERROR}" == "error"
    for schema in (MessageRead, BackupMessage):
        annotation = schema.model_fields["status"].annotation
        assert set(typing.get_args(annotation)) == set(MessageStatus)
    assert {r.value for r in FinishReason} == {"stop", "length", "cancelled", "tool_limit", "error"}
