"""A lean incremental Server-Sent Events parser for upstream model streams.

It sits on the per-token hot path, so it works on bytes, allocates little and never
builds objects per line: `feed()` takes whatever the socket delivered (events may be
split anywhere, even inside a CRLF) and returns the complete events as
`(event_name, data_bytes)`; data stays bytes because `json.loads` accepts bytes.
Comment lines (`: ping`) and unknown fields are ignored, as the SSE spec says.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from app.services.llm.base import ProviderError

MAX_PENDING_BYTES = 8 * 1024 * 1024  # one event larger than this is not a sane model stream
HEAD_BYTES = 4096  # what is kept of a body that turns out not to be an event stream

SSEEvent = tuple[str, bytes]


def load_json(data: bytes) -> Any:
    """Decode one event's JSON: orjson (5x faster per token), the standard library for what
    orjson refuses but the old reader accepted (an escaped lone surrogate, `NaN`), so both
    read the same events and a garbled one still raises `ValueError`."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


class SSEParser:
    """Splits a byte stream into SSE events; keep one instance per response."""

    __slots__ = ("_data", "_event", "_held", "_held_size", "_pending")

    def __init__(self) -> None:
        """Start with nothing held and no pending event."""
        self._held: list[bytes] = []  # pieces of an unfinished line (joined once it ends)
        self._held_size = 0
        self._event = ""
        self._data: list[bytes] = []
        self._pending = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume one chunk; return the events it completed (possibly none)."""
        if (
            chunk.endswith(b"\n\n")
            and not self._held
            and not self._data
            and not self._event
            and b"\r" not in chunk
        ):
            return self._whole(chunk)
        if b"\n" not in chunk and b"\r" not in chunk:
            self._hold(chunk)  # no line ends here: keep it without re-copying what is held
            return []
        buffer = b"".join((*self._held, chunk)) if self._held else chunk
        self._held, self._held_size = [], 0
        end = len(buffer)
        if buffer.endswith(b"\r"):
            end -= 1  # may be the first half of a CRLF split across chunks
        cut = max(buffer.rfind(b"\n", 0, end), buffer.rfind(b"\r", 0, end))
        if cut < 0:
            self._hold(buffer)
            return []
        if cut + 1 < len(buffer):
            self._hold(buffer[cut + 1 :])
        events: list[SSEEvent] = []
        for line in buffer[: cut + 1].splitlines():
            self._line(line, events)
        return events

    def _whole(self, chunk: bytes) -> list[SSEEvent]:
        """A read of whole events and nothing pending (the usual one at a realistic token
        rate): one split, and each `data:` or `event:` + `data:` event taken as it is."""
        events: list[SSEEvent] = []
        for block in chunk[:-2].split(b"\n\n"):
            if block[:5] == b"data:":
                if b"\n" not in block:
                    value = block[5:]
                    events.append(("message", value[1:] if value[:1] == b" " else value))
                    continue
            elif block[:6] == b"event:":
                head, _, value = block.partition(b"\n")
                if value[:5] == b"data:" and b"\n" not in value:
                    name = head[6:].strip().decode("utf-8", "replace") or "message"
                    value = value[5:]
                    events.append((name, value[1:] if value[:1] == b" " else value))
                    continue
            for line in block.split(b"\n"):  # anything else: line by line
                self._line(line, events)
            self._line(b"", events)
        return events

    def close(self) -> list[SSEEvent]:
        """At end of stream: dispatch a last event whose terminating blank line never came."""
        events: list[SSEEvent] = []
        if self._held:
            self._line(b"".join(self._held).rstrip(b"\r"), events)
            self._held, self._held_size = [], 0
        self._line(b"", events)
        return events

    def _hold(self, piece: bytes) -> None:
        """Keep part of an unfinished line for later, refusing unbounded growth."""
        self._held.append(piece)
        self._held_size += len(piece)
        if self._held_size + self._pending > MAX_PENDING_BYTES:
            raise ProviderError("upstream_protocol", "upstream sent an oversized stream event")

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        """Apply one line: a field, a comment, or the blank line that dispatches an event."""
        if not line:
            if self._data:
                data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                events.append((self._event or "message", data))
                self._data = []
                self._pending = 0
            self._event = ""
            return
        if line.startswith(b"data:"):
            value = line[5:]
            if value[:1] == b" ":
                value = value[1:]
            self._data.append(value)
            self._pending += len(value)
            return
        if line[:1] == b":":
            return
        field, _, value = line.partition(b":")
        if field == b"event":
            self._event = value.strip().decode("utf-8", "replace")
