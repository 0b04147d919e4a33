"""SSE frames: each event is encoded once, when it is logged, and shared by every reader."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.core.shutdown import SHUTDOWN_ERROR

TERMINAL_EVENTS = frozenset({"done", "error"})
PING_FRAME = b": ping\n\n"


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One event of a generation: its id (1, 2, ...), name and the encoded SSE frame."""

    id: int
    name: str
    frame: bytes

    @property
    def terminal(self) -> bool:
        """Whether the stream ends with this event."""
        return self.name in TERMINAL_EVENTS


def encode_frame(event_id: int, name: str, data: dict[str, Any]) -> bytes:
    """`event:`, `id:` and one-line JSON `data:` (JSON never contains a raw newline)."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\nid: {event_id}\ndata: {payload}\n\n".encode()


def decode_frame(frame: bytes) -> tuple[str, dict[str, Any]]:
    """The event name and data of a frame (used when reading logs back from Redis)."""
    name, data = "", "{}"
    for line in frame.decode().split("\n"):
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
    parsed: dict[str, Any] = json.loads(data)
    return name, parsed


def last_id_of(chunk: bytes | None, default: int) -> int:
    """The id of the last event in a chunk of frames (`default` when it holds none)."""
    if chunk is None:
        return default
    at = chunk.rfind(b"\nid: ")
    if at < 0:
        return default
    end = chunk.index(b"\n", at + 5)
    return int(chunk[at + 5 : end])


def shutdown_frame(last_chunk: bytes | None, *, after: int) -> bytes:
    """`error` `server_shutdown`, with the id of the last event the client got (or `after`,
    the id it re-attached with), so a re-attach with it resumes exactly."""
    return encode_frame(last_id_of(last_chunk, after), "error", SHUTDOWN_ERROR)
