"""What a generation is asked to do (`TurnRequest`) and what it has produced (`TurnState`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from app.observability import metrics
from app.services.chat.reasoning import ReasoningTrack
from app.services.chat.store import TurnIds
from app.services.llm import ChatMessage, ModelConfig, Usage
from app.services.tools import Tool

__all__ = ["Resumed", "TurnIds", "TurnRequest", "TurnState"]


@dataclass
class TurnRequest:
    """Everything a generation needs, resolved before the stream starts."""

    ids: TurnIds
    new_conversation: bool
    text: str
    model: ModelConfig
    fallbacks: list[ModelConfig]
    messages: list[ChatMessage]
    tools: list[Tool]
    temperature: float | None
    max_tokens: int | None
    make_title: bool
    parent_id: uuid.UUID | None = None  # the new user message's parent
    user_message: bool = True  # False: an answer below an existing user message (regenerate)
    resumed: Resumed | None = None  # `continue`: the saved answer this turn appends to
    attachments: list[dict[str, Any]] | None = None  # the new user message's files
    auto_approved: frozenset[str] = frozenset()  # the user's `auto_approve_tools`


@dataclass(frozen=True)
class Resumed:
    """The saved part of an answer that `continue` appends to."""

    content: str
    tool_calls: list[dict[str, Any]]
    usage: dict[str, Any] | None = None  # the tokens it took so far (the new ones are added)
    reasoning: str | None = None  # its reasoning so far (the new reasoning is appended)


@dataclass
class TurnState:
    """What has been produced so far (saved whatever the outcome)."""

    parts: list[str] = field(default_factory=list)
    reasoning: ReasoningTrack = field(default_factory=ReasoningTrack)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float | None = 0.0  # None once a round's model has no pricing
    saw_usage: bool = False
    model_id: str = ""
    token_count: int = 0
    attachments: list[dict[str, Any]] = field(default_factory=list)  # images tools returned

    def add_usage(self, usage: Usage, model: ModelConfig) -> None:
        """Count one upstream call at the price of the model that made it (fallbacks
        included); the cost becomes unknown (None) once a call's model has no pricing."""
        self.saw_usage = True
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cached_input_tokens += usage.cached_input_tokens
        pricing = model.pricing
        cost = (
            pricing.cost_usd(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_input_tokens=usage.cached_input_tokens,
            )
            if pricing
            else None
        )
        metrics.add_usage(
            model.id,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached=usage.cached_input_tokens,
            cost_usd=cost,
        )
        if cost is None or self.cost_usd is None:
            self.cost_usd = None
        else:
            self.cost_usd += cost

    def usage(self) -> dict[str, Any] | None:
        """The `usage` saved on the message (and its queryable columns), None if none came."""
        if not self.saw_usage:
            return None
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 8),
        }

    @property
    def text(self) -> str:
        """The assistant text so far."""
        return "".join(self.parts)
