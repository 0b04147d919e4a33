"""Server-Sent Events on the wire: frame encoding, response headers, keep-alives.

Shared by the chat streams and `/sync/stream`. A frame is `event:`, an optional `id:` and
one `data:` line of JSON (JSON never holds a raw newline). Encoding is on the per-token path
of chat streams: one orjson encode and one bytes format, nothing checked at run time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SSE_MEDIA_TYPE = "text/event-stream"
PING_FRAME = b": ping\n\n"  # a comment line: keeps proxies from closing an idle stream

# built once: `json.dumps` with non-default options builds a new encoder on every call
_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def retry_frame(milliseconds: int) -> bytes:
    """`retry:` tells an EventSource how long to wait before it reconnects."""
    return f"retry: {milliseconds}\n\n".encode()


def encode_sse(name: str, payload: str, *, event_id: int | None = None) -> bytes:
    """One frame from JSON text that is already encoded."""
    if event_id is None:
        return f"event: {name}\ndata: {payload}\n\n".encode()
    return f"event: {name}\nid: {event_id}\ndata: {payload}\n\n".encode()


def encode_event(name: str, data: Mapping[str, Any], *, event_id: int | None = None) -> bytes:
    """One frame with compact JSON data (`{"a":1}`, non-ASCII kept as UTF-8).

    orjson writes the same compact UTF-8 JSON ~10x faster; what it refuses (non-string
    keys, integers beyond 64 bits, a lone surrogate) goes through the standard library as
    before, which encodes it or raises as it always did."""
    try:
        payload = orjson.dumps(data)
    except orjson.JSONEncodeError:
        return encode_sse(name, _compact_json(data), event_id=event_id)
    if event_id is None:
        return b"event: %s\ndata: %s\n\n" % (name.encode(), payload)
    return b"event: %s\nid: %d\ndata: %s\n\n" % (name.encode(), event_id, payload)


def decode_frame(frame: bytes) -> tuple[str, dict[str, Any]]:
    """The event name and data of one frame."""
    name, data = "", "{}"
    for line in frame.decode().split("\n"):
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
    parsed: dict[str, Any] = json.loads(data)
    return name, parsed


def last_id_of(chunk: bytes | None, default: int) -> int:
    """The id of the last frame in a chunk of frames (`default` when it holds none)."""
    if chunk is None:
        return default
    at = chunk.rfind(b"\nid: ")
    if at < 0:
        return default
    end = chunk.index(b"\n", at + 5)
    return int(chunk[at + 5 : end])


def event_frames(chunk: bytes) -> Iterator[tuple[bytes, bytes, bytes]]:
    """The `(name, id, data)` of each event frame in a chunk of frames, as written by
    `encode_event` (comments, `retry:` and frames without an id are skipped)."""
    for frame in chunk.split(b"\n\n"):
        if not frame.startswith(b"event: "):
            continue
        head, _, data = frame.partition(b"\ndata: ")
        name, _, event_id = head[7:].partition(b"\nid: ")
        if event_id:
            yield name, event_id, data
