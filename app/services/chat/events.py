"""SSE frames: each event is encoded once, when it is logged, and shared by every reader."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

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
