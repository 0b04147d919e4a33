"""The incremental SSE parser: events come out the same however the bytes are split."""

from __future__ import annotations

import pytest

from app.services.llm import ProviderError
from app.services.llm.sse import MAX_PENDING_BYTES, SSEParser

STREAM = (
    b": keep-alive comment\n"
    b"event: content_block_delta\n"
    b'data: {"text": "h\xc3\xa9llo"}\n'
    b"\n"
    b"data: first line\r\n"
    b"data: second line\r\n"
    b"\r\n"
    b"id: 7\n"
    b"retry: 100\n"
    b"not a field line\n"
    b"data:no-space\n"
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)
EXPECTED = [
    ("content_block_delta", '{"text": "h\xc3\xa9llo"}'.encode("latin-1")),
    ("message", b"first line\nsecond line"),
    ("message", b"no-space"),
    ("message", b"[DONE]"),
]


def _parse(pieces: list[bytes]) -> list[tuple[str, bytes]]:
    parser = SSEParser()
    events = [event for piece in pieces for event in parser.feed(piece)]
    return events + parser.close()


def test_whole_stream() -> None:
    assert _parse([STREAM]) == EXPECTED


def test_every_two_way_split_gives_the_same_events() -> None:
    for cut in range(1, len(STREAM)):
        assert _parse([STREAM[:cut], STREAM[cut:]]) == EXPECTED, cut


def test_byte_by_byte() -> None:
    assert _parse([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_unterminated_last_event_is_flushed_on_close() -> None:
    assert _parse([b"data: a\n\ndata: [DONE]"]) == [("message", b"a"), ("message", b"[DONE]")]


def test_event_name_resets_after_dispatch() -> None:
    assert _parse([b"event: x\ndata: 1\n\ndata: 2\n\n"]) == [("x", b"1"), ("message", b"2")]


def test_endless_line_is_refused() -> None:
    parser = SSEParser()
    with pytest.raises(ProviderError) as caught:
        for _ in range(MAX_PENDING_BYTES // 65536 + 2):
            parser.feed(b"x" * 65536)
    assert caught.value.code == "upstream_protocol"
