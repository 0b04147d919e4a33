"""An answer's reasoning: what the agent keeps of it (shown text, blocks to replay) and the
writes that save it beside `content` (checkpoint and finish; spool files from before it)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from app.db.base import utcnow
from app.models import Message
from app.repositories.turn_writes import FinishWrite
from app.services.chat.reasoning import ReasoningTrack
from app.services.chat.spool import SpoolDocument, decode, encode
from app.services.chat.store import TurnIds, TurnStore
from app.services.llm import ReasoningBlock, ReasoningDelta
from app.state import AppState


def test_track_shows_every_piece_and_keeps_signed_blocks_for_their_round() -> None:
    track = ReasoningTrack()
    shown = [
        track.add(ReasoningDelta("Add "), model_id="m"),
        track.add(ReasoningDelta("them."), model_id="m"),
        track.add(ReasoningDelta("", signature="sig-1"), model_id="m"),
        track.add(ReasoningDelta("", redacted="opaque"), model_id="m"),
    ]
    assert shown == ["Add ", "them.", "", ""]
    assert track.take_blocks() == [
        ReasoningBlock("m", "Add them.", signature="sig-1"),
        ReasoningBlock("m", redacted="opaque"),
    ]
    assert track.take_blocks() is None  # each round replays only its own blocks
    # the next round's block starts a new paragraph, in the event that starts it
    assert track.add(ReasoningDelta("Done."), model_id="m") == "\n\nDone."
    track.add(ReasoningDelta("", signature="sig-2"), model_id="m")
    assert track.take_blocks() == [ReasoningBlock("m", "Done.", signature="sig-2")]
    assert track.text == "Add them.\n\nDone."
    assert ReasoningTrack().text is None  # no reasoning: null, not ""


async def _saved(state: AppState, message_id: uuid.UUID) -> tuple[str, str | None, str]:
    async with state.session_factory() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        return message.content, message.reasoning, message.status


async def test_checkpoint_and_finish_save_reasoning_beside_the_content(
    state: AppState, alice: dict[str, Any]
) -> None:
    user_id = uuid.UUID(alice["user"]["id"])
    ids = TurnIds(
        user_id=user_id,
        conversation_id=uuid.uuid4(),
        user_message_id=uuid.uuid4(),
        message_id=uuid.uuid4(),
    )
    store = TurnStore(writer=state.turn_writer)
    await store.begin(ids=ids, new_conversation=True, model_id="m", text="q", now=utcnow())
    assert await _saved(state, ids.message_id) == ("", None, "streaming")
    await store.checkpoint(
        user_id=user_id, message_id=ids.message_id, content="", reasoning="Thinking so far"
    )
    assert await _saved(state, ids.message_id) == ("", "Thinking so far", "streaming")
    await store.finish(
        ids=ids,
        content="Answer.",
        status="complete",
        model_id="m",
        usage=None,
        tool_calls=None,
        title=None,
        now=utcnow(),
        reasoning="Thinking so far, and done.",
    )
    assert await _saved(state, ids.message_id) == (
        "Answer.",
        "Thinking so far, and done.",
        "complete",
    )


def test_a_spool_file_written_before_reasoning_still_replays() -> None:
    write = FinishWrite(
        user_id=uuid.uuid4(),
        conversation_id=uuid.uuid4(),
        message_id=uuid.uuid4(),
        content="Answer.",
        status="complete",
        model="m",
        usage=None,
        tool_calls=None,
        title=None,
        now=utcnow(),
    )
    document = json.loads(encode(SpoolDocument(write=write)))
    del document["write"]["reasoning"]  # as an older version wrote it
    restored = decode(json.dumps(document).encode()).write
    assert isinstance(restored, FinishWrite)
    assert restored.reasoning is None and restored.content == "Answer."
