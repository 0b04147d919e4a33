"""The frames of `GET /ws` on the wire: client frames parsed, server frames encoded.

An `event` frame is built from the generation's SSE frame by splicing bytes: its data is
the JSON the log already encoded once, so relaying an event costs no JSON work.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pydantic import ValidationError

from app.core.errors import InvalidInput
from app.core.json_input import loads_bounded
from app.core.sse import event_frames
from app.schemas.common import MAX_JSON_DEPTH
from app.services.sync.cursor import encode_cursor

MAX_FRAME_CHARS = 256 * 1024  # a chat.start with a 32,000-character message fits many times
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def parse_frame(text: str | None, data: bytes | None) -> dict[str, Any]:
    """A client frame's JSON object (a text or binary message); 422 `bad_frame` otherwise."""
    raw = text.encode() if text is not None else data or b""
    if len(raw) > MAX_FRAME_CHARS:
        raise InvalidInput(f"A frame may hold at most {MAX_FRAME_CHARS} bytes", code="bad_frame")
    try:
        frame = loads_bounded(raw, max_depth=MAX_JSON_DEPTH)
    except ValueError as exc:  # not UTF-8, not JSON, nested too deep
        raise InvalidInput("A frame is one JSON object", code="bad_frame") from exc
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise InvalidInput('A frame is a JSON object with a "type"', code="bad_frame")
    return frame


def ref_of(frame: dict[str, Any]) -> str | None:
    """The frame's `ref` when it is a short string (echoed back; anything else is not)."""
    ref = frame.get("ref")
    return ref if isinstance(ref, str) and len(ref) <= 128 else None


def validation_detail(exc: ValidationError) -> str:
    """The first problem of an invalid frame, as `field: message`."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "frame"
    return f"{where}: {first['msg']}"


def error_frame(
    code: str, detail: str, *, ref: str | None = None, retry_after: int | None = None
) -> str:
    """`{"type": "error", "ref"?, "code", "detail", "retry_after"?}`."""
    body: dict[str, Any] = {"type": "error"}
    if ref is not None:
        body["ref"] = ref
    body["code"], body["detail"] = code, detail
    if retry_after is not None:
        body["retry_after"] = retry_after
    return str(_compact(body))


def ready_frame(user_id: uuid.UUID) -> str:
    """`{"type": "ready", "user_id"}`: the `auth` frame was accepted."""
    return f'{{"type":"ready","user_id":"{user_id}"}}'


def changed_frame(*, user_id: uuid.UUID, seq: int) -> str:
    """`{"type": "sync.changed", "cursor"}`."""
    return f'{{"type":"sync.changed","cursor":"{encode_cursor(user_id=user_id, seq=seq)}"}}'


def event_prefix(message_id: uuid.UUID, ref: str | None) -> bytes:
    """The start of every event frame of one followed answer."""
    tagged = f'"ref":{_compact(ref)},' if ref is not None else ""
    return f'{{"type":"event",{tagged}"message_id":"{message_id}","id":'.encode()


def relayed(chunk: bytes, prefix: bytes) -> list[str]:
    """The `event` frames of a chunk of the answer's SSE frames (keep-alives dropped)."""
    return [
        (b'%s%s,"event":"%s","data":%s}' % (prefix, event_id, name, data)).decode()
        for name, event_id, data in event_frames(chunk)
    ]
