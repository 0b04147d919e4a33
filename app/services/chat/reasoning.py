"""The reasoning of one answer: the text shown and saved, and the blocks replayed in its loop.

Every piece of reasoning text goes to the client (`reasoning` events) and into
`Message.reasoning`; never into `content`. Anthropic closes each thinking block with a
signature (or sends a redacted block): those blocks, and only those, go back to the same
model in the assistant turn of the running tool loop (`take_blocks`), as the API requires.
They are never stored, so no later turn and no other model sees them.
"""

from __future__ import annotations

from app.services.llm import ReasoningBlock, ReasoningDelta

BLOCK_SEPARATOR = "\n\n"  # between two blocks' text in what is shown and saved


class ReasoningTrack:
    """What the reasoning deltas of one answer add up to (a list append per piece)."""

    __slots__ = ("_block_start", "_blocks", "_pending_break", "parts")

    def __init__(self) -> None:
        """No reasoning yet."""
        self.parts: list[str] = []  # what the `reasoning` events sent, in order
        self._blocks: list[ReasoningBlock] = []
        self._block_start = 0  # where the open block's text starts in `parts`
        self._pending_break = False  # a block closed: the next text starts a new paragraph

    @property
    def text(self) -> str | None:
        """The reasoning so far (None when there was none)."""
        return "".join(self.parts) or None

    def add(self, event: ReasoningDelta, *, model_id: str) -> str:
        """Fold one delta in; the text to send as a `reasoning` event ('' for none)."""
        content = event.content
        if content:
            if self._pending_break:
                self._pending_break = False
                if self.parts:
                    self.parts.append(BLOCK_SEPARATOR)
                    self._block_start = len(self.parts)
                    self.parts.append(content)
                    return BLOCK_SEPARATOR + content
            self.parts.append(content)
            return content
        if event.signature:
            text = "".join(self.parts[self._block_start :])
            self._blocks.append(ReasoningBlock(model_id, text, signature=event.signature))
            self._close()
        elif event.redacted is not None:
            self._blocks.append(ReasoningBlock(model_id, redacted=event.redacted))
            self._close()
        return ""

    def take_blocks(self) -> list[ReasoningBlock] | None:
        """The blocks of the round that just ended (for its assistant turn), then none."""
        blocks, self._blocks = self._blocks, []
        self._close()
        return blocks or None

    def _close(self) -> None:
        self._block_start = len(self.parts)
        self._pending_break = True
