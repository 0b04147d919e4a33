"""Chat SSE frames: each event is encoded once, when it is logged, and shared by every reader.

The events' data types are in `app/schemas/events.py`; the frame format in `app/core/sse.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.sse import encode_event, last_id_of
from app.schemas.events import SERVER_SHUTDOWN, TERMINAL_EVENTS, ChatEventData, ChatEventName


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


def encode_frame(event_id: int, name: ChatEventName, data: ChatEventData) -> bytes:
    """`event:`, `id:` and one-line JSON `data:`."""
    return encode_event(name, data, event_id=event_id)


def shutdown_frame(last_chunk: bytes | None, *, after: int) -> bytes:
    """`error` `server_shutdown`, with the id of the last event the client got (or `after`,
    the id it re-attached with), so a re-attach with it resumes exactly."""
    return encode_frame(last_id_of(last_chunk, after), "error", SERVER_SHUTDOWN)
