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


# reads that each end on an event boundary (the usual shape at a realistic token rate):
# they take the whole-events path; fed byte by byte they take the line-by-line one
WHOLE_READS = [
    b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n',
    b"event: content_block_delta\ndata: {}\n\n",
    b"data:no-space\n\ndata:  two spaces\n\n",
    b"data: \n\n",  # an empty data field is still an event
    b"event: \ndata: x\n\n",  # an empty event name means `message`
    b"event:  ping \ndata: y\n\n",
    b": comment\ndata: after a comment\n\n",
    b"data: first\ndata: second\n\n",  # multi-line data
    b"event: a\nid: 3\ndata: with an id\n\n",
    b"data: extra blank lines\n\n\n\n",
    b"\n\n",  # blank lines only
    b"event: named\n\n",  # a name without data dispatches nothing, then resets
    b"data: one\n\ndata: two\n\nevent: e\ndata: three\n\n",
    b"retry: 10\n\n",
    b"data: [DONE]\n\n",
]


def test_whole_event_reads_give_what_line_by_line_parsing_gives() -> None:
    fast = SSEParser()
    whole = [event for read in WHOLE_READS for event in fast.feed(read)] + fast.close()
    assert whole == _parse([bytes([b]) for read in WHOLE_READS for b in read])
    assert whole[:4] == [
        ("message", b'{"choices":[{"delta":{"content":"a"}}]}'),
        ("content_block_delta", b"{}"),
        ("message", b"no-space"),
        ("message", b" two spaces"),
    ]
    assert ("ping", b"y") in whole and ("message", b"x") in whole
    assert ("message", b"first\nsecond") in whole
    assert ("e", b"three") in whole and whole[-1] == ("message", b"[DONE]")


def test_a_whole_read_after_a_split_event_finishes_it_first() -> None:
    parser = SSEParser()
    assert parser.feed(b"event: a\ndata: par") == []
    assert parser.feed(b"t\n\ndata: next\n\n") == [("a", b"part"), ("message", b"next")]
    assert parser.feed(b"event: b\n") == []  # a name pending: the next read is not `whole`
    assert parser.feed(b"data: c\n\n") == [("b", b"c")]
