"""The agent loop's side of tool approval: ask the user before a call, wait, go on.

Only the call that needs approval waits (the round's other calls run); several waiting
calls are decided one by one. While any call waits the generation is paused: the message is
`awaiting_approval` (one status write when the pause starts, one when it ends, never per
token), it does not count towards MAX_CONCURRENT_GENERATIONS, and the wait is a future:
no database connection, no thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any

from app.core.status import MessageStatus
from app.db.base import utcnow
from app.schemas.events import ToolApprovalDecidedEvent, ToolApprovalEvent
from app.services.chat.approvals import Decision
from app.services.chat.registry import Generation, GenerationRegistry
from app.services.chat.store import TurnIds, TurnStore
from app.services.chat.turn import TurnState
from app.services.llm import ToolCallRequest
from app.services.tools import Tool, ToolOutcome, needs_approval

# what the model reads instead of a result when the call did not run
REFUSALS = {
    "denied": "The user denied this tool call; it was not run.",
    "timeout": "Nobody approved this tool call in time; it was not run.",
}
NOT_RUN = {
    "cancelled": "Not run: the answer ended while this call awaited approval.",
    "interrupted": "Not run: the server restarted while this call awaited approval.",
}


class ApprovalGate:
    """Asks the user before each call whose source wants approval (unless waived)."""

    def __init__(
        self,
        *,
        gen: Generation,
        generations: GenerationRegistry,
        store: TurnStore,
        ids: TurnIds,
        state: TurnState,
        emit: Callable[..., Any],
        auto_approved: Collection[str],
        timeout_s: float,
    ) -> None:
        self.gen, self.generations, self.desk = gen, generations, generations.approvals
        self.store, self.ids, self.state, self.emit = store, ids, state, emit
        self.auto_approved, self.timeout_s = frozenset(auto_approved), timeout_s
        self.waiting = 0
        self._saved: tuple[str, ...] = ()  # the calls the last status write showed waiting
        self._write = asyncio.Lock()  # status writes land in the order of the pauses

    def needs(self, tool: Tool | None) -> bool:
        """Whether a call of this tool waits for the user."""
        return tool is not None and needs_approval(tool, auto_approved=self.auto_approved)

    async def ask(self, call: ToolCallRequest, tool: Tool, record: dict[str, Any]) -> Decision:
        """Announce the call as waiting, wait for its decision (or the timeout), say which."""
        message_id = self.ids.message_id
        expires_at = (utcnow() + timedelta(seconds=self.timeout_s)).isoformat()
        record.update(status="awaiting_approval", expires_at=expires_at)
        await self.desk.open(
            message_id=message_id,
            user_id=self.ids.user_id,
            call_id=call.id,
            wait_s=self.timeout_s,
        )
        asked: ToolApprovalEvent = {
            "call_id": call.id,
            "server": tool.server,
            "tool": tool.name,
            "arguments": call.arguments,
            "expires_at": expires_at,
        }
        self._count(+1)
        decision: Decision | None = None
        try:
            await self._save_status()  # history shows the pause before any client can act
            self.emit("tool_approval", asked)
            decision = await self.desk.wait(
                message_id=message_id, call_id=call.id, timeout_s=self.timeout_s
            )
        finally:
            record.pop("expires_at", None)
            record["status"] = "error"  # until its result arrives
            if decision is None:  # the answer ended (cancel, time limit, shutdown)
                self.desk.abandon(message_id=message_id, call_id=call.id)
                record["result"] = NOT_RUN["interrupted" if self.gen.interrupted else "cancelled"]
            self._count(-1)
        shown = decision.outcome if decision.outcome != "closed" else "denied"
        decided: ToolApprovalDecidedEvent = {
            "call_id": call.id,
            "decision": shown,
            "reason": decision.reason,
        }
        self.emit("tool_approval_decided", decided)
        await self._save_status()
        return decision

    @staticmethod
    def refusal(decision: Decision) -> ToolOutcome:
        """The error result the model gets for a call that was not approved."""
        text = REFUSALS["timeout" if decision.outcome == "timeout" else "denied"]
        if decision.reason:
            text += f" Reason given: {decision.reason}"
        return ToolOutcome("error", text, 0)

    def _count(self, change: int) -> None:
        self.waiting += change
        self.generations.set_paused(self.gen, paused=self.waiting > 0)

    async def _save_status(self) -> None:
        """Write `awaiting_approval` (or `streaming` again) with the calls, when the set of
        waiting calls changed: a few writes per pause, none per token."""
        async with self._write:
            calls = self.state.tool_calls
            waiting = tuple(c["id"] for c in calls if c.get("status") == "awaiting_approval")
            if waiting == self._saved:
                return
            self._saved = waiting
            status = MessageStatus.AWAITING_APPROVAL if waiting else MessageStatus.STREAMING
            await self.store.checkpoint(
                user_id=self.ids.user_id,
                message_id=self.ids.message_id,
                content=self.state.text,
                last_event_id=self.gen.log.next_id - 1,
                reasoning=self.state.reasoning.text,
                status=status,
                tool_calls=self.state.tool_calls,
            )
