"""Tool calls waiting for the user's approval: the waits on this worker, decisions from any.

A waiting call is a future on the worker that runs its generation. A decision (approve,
deny, or the owner's own timeout) is taken exactly once:

- without Redis in the process itself (the future is done or not: one event loop, no race);
- with Redis by one Lua script on the call's hash `vektor:gen:<message>:approval:<call>`:
  it checks the owner, claims the `decision` field with HSETNX and publishes the decision
  on `APPROVAL_CHANNEL`, which the mirror's listener hands to `deliver` on every worker.
  The owner's timeout claims the same field, so a late approval gets 409, never a run.

The hash outlives the wait (until the generation's log expires), so a second decision is
`409 already_decided`, not 404. A wait holds no database connection, thread or slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from loguru import logger
from redis.asyncio import Redis

from app.core.errors import Conflict, NotFound
from app.services.chat.redis_mirror import APPROVAL_CHANNEL, PREFIX

Outcome = Literal["approved", "denied", "timeout", "closed"]

# KEYS[1] the call's hash; ARGV: user id, decision, channel, message. 0 = not this user's
# (or unknown), 1 = already decided, 2 = decided now (and published)
_DECIDE = """
local owner = redis.call('HGET', KEYS[1], 'user_id')
if not owner or owner ~= ARGV[1] then return 0 end
if redis.call('HSETNX', KEYS[1], 'decision', ARGV[2]) == 0 then return 1 end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 2
"""


@dataclass(frozen=True, slots=True)
class Decision:
    """What became of a call that asked: approved, denied (with the user's reason), timed
    out, or closed (its answer ended first)."""

    outcome: Outcome
    reason: str | None = None

    def encode(self) -> str:
        """JSON for Redis."""
        return json.dumps({"outcome": self.outcome, "reason": self.reason})

    @classmethod
    def decode(cls, raw: bytes | str) -> Decision:
        """The inverse of `encode`."""
        data = json.loads(raw)
        return cls(data["outcome"], data.get("reason"))


def _call_key(message_id: uuid.UUID, call_id: str) -> str:
    return f"{PREFIX}{message_id}:approval:{call_id}"


class ApprovalDesk:
    """Opens waits, takes decisions (once), and hands them to the waiting call."""

    def __init__(self, *, redis: Redis | None, keep_s: float) -> None:
        self.redis = redis
        self.keep_s = int(max(keep_s, 1))  # how long a decided call still answers 409
        self._calls: dict[tuple[uuid.UUID, str], asyncio.Future[Decision]] = {}
        self._owners: dict[uuid.UUID, uuid.UUID] = {}  # message → user, for local calls
        self._marks: set[asyncio.Task[Any]] = set()

    async def open(
        self, *, message_id: uuid.UUID, user_id: uuid.UUID, call_id: str, wait_s: float
    ) -> None:
        """Register a call that waits (locally first: a decision may arrive at once)."""
        self._calls[(message_id, call_id)] = asyncio.get_running_loop().create_future()
        self._owners[message_id] = user_id
        if self.redis is None:
            return
        key = _call_key(message_id, call_id)
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(key, "user_id", str(user_id))
            pipe.expire(key, int(wait_s) + self.keep_s)
            await pipe.execute()
        except Exception as exc:  # decisions sent to this worker still reach the call
            logger.warning("cannot share the approval of {} via Redis: {}", call_id, exc)

    async def wait(self, *, message_id: uuid.UUID, call_id: str, timeout_s: float) -> Decision:
        """The call's decision, or `timeout` after `timeout_s` (unless one was taken first)."""
        future = self._calls[(message_id, call_id)]
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        return await self._settle(message_id, call_id, Decision("timeout"))

    def abandon(self, *, message_id: uuid.UUID, call_id: str) -> None:
        """The answer ended while the call waited: later decisions get 409."""
        future = self._calls.get((message_id, call_id))
        if future is not None and not future.done():
            task = asyncio.create_task(self._settle(message_id, call_id, Decision("closed")))
            self._marks.add(task)
            task.add_done_callback(self._marks.discard)

    async def _settle(self, message_id: uuid.UUID, call_id: str, own: Decision) -> Decision:
        """The owner's own decision, unless another was claimed first (then that one)."""
        future = self._calls[(message_id, call_id)]
        decision = own
        if self.redis is not None and not future.done():
            key = _call_key(message_id, call_id)
            try:
                if not await self.redis.hsetnx(key, "decision", own.encode()):
                    raw: Any = await self.redis.hget(key, "decision")
                    decision = Decision.decode(raw) if raw else own
            except Exception as exc:
                logger.warning("cannot record the {} of call {}: {}", own.outcome, call_id, exc)
        if not future.done():
            future.set_result(decision)
        return future.result()

    async def decide(
        self,
        *,
        user_id: uuid.UUID,
        message_id: uuid.UUID,
        call_id: str,
        approve: bool,
        reason: str | None,
    ) -> None:
        """Approve or deny a waiting call of this user, from any worker; 404 if there is no
        such call of this user, 409 `already_decided` if it was decided (or ended) before."""
        decision = Decision("approved" if approve else "denied", reason)
        if self.redis is not None:
            key = _call_key(message_id, call_id)
            payload = json.dumps(
                {"message_id": str(message_id), "call_id": call_id, "decision": decision.encode()}
            )
            try:
                args = [str(user_id), decision.encode(), APPROVAL_CHANNEL, payload]
                answer = int(await self.redis.eval(_DECIDE, 1, key, *args))
            except Exception as exc:
                logger.warning("cannot decide call {} via Redis ({}); deciding here", call_id, exc)
            else:
                if answer == 0:
                    raise NotFound("No tool call awaiting approval with this id")
                if answer == 1:
                    raise Conflict("This tool call was already decided", code="already_decided")
                self.deliver(message_id, call_id, decision)  # at once when it waits here
                return
        future = self._calls.get((message_id, call_id))
        if future is None or self._owners.get(message_id) != user_id:
            raise NotFound("No tool call awaiting approval with this id")
        if future.done():
            raise Conflict("This tool call was already decided", code="already_decided")
        future.set_result(decision)

    def deliver(self, message_id: uuid.UUID, call_id: str, decision: Decision) -> None:
        """A decision taken (here or on another worker) reaches the call if it waits here."""
        future = self._calls.get((message_id, call_id))
        if future is not None and not future.done():
            future.set_result(decision)

    def on_published(self, data: str) -> None:
        """A decision published on `APPROVAL_CHANNEL` (JSON: message id, call id, decision)."""
        with contextlib.suppress(ValueError, KeyError, TypeError):
            sent = json.loads(data)
            message_id = uuid.UUID(sent["message_id"])
            self.deliver(message_id, str(sent["call_id"]), Decision.decode(sent["decision"]))

    def forget(self, message_id: uuid.UUID) -> None:
        """Drop a finished generation's calls (its log expired)."""
        if self._owners.pop(message_id, None) is not None:
            for key in [k for k in self._calls if k[0] == message_id]:
                del self._calls[key]
