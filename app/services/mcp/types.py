"""What one replica reports about one attempt to run a tool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AttemptKind = Literal["ok", "tool_error", "rejected", "not_sent", "lost", "timeout"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened when one replica was asked to run a tool."""

    # not_sent: never reached the server (safe to send elsewhere); lost / timeout: may have
    # run (retried elsewhere only for idempotent tools); rejected: a protocol error or an
    # invalid result; ok / tool_error: a result (is_error or not).

    kind: AttemptKind
    text: str = ""
