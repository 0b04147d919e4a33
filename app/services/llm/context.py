"""Trim a conversation to what fits a model's context window."""

from __future__ import annotations

import json

from app.services.llm.base import ChatMessage, ImagePart, TextPart

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4  # role markers and separators every chat format adds
IMAGE_TOKENS = 1600  # about what a full-size image costs at Anthropic and OpenAI (high detail)


def estimate_tokens(message: ChatMessage) -> int:
    """A cheap, deliberately generous estimate (~4 characters per token plus overhead)."""
    chars = len(message.content)
    for call in message.tool_calls or ():
        chars += len(call.name) + len(call.id) + len(json.dumps(call.arguments))
    images = 0
    for part in message.parts or ():
        if isinstance(part, TextPart):
            chars += len(part.text)
        elif isinstance(part, ImagePart):
            images += 1
    return chars // CHARS_PER_TOKEN + MESSAGE_OVERHEAD_TOKENS + images * IMAGE_TOKENS


def _groups(history: list[ChatMessage]) -> list[list[ChatMessage]]:
    """Split history into units that must stay together: a tool call and its results."""
    groups: list[list[ChatMessage]] = []
    for message in history:
        if message.role == "tool" and groups and groups[-1][0].tool_calls:
            groups[-1].append(message)
        else:
            groups.append([message])
    return groups


def fit_to_context(
    messages: list[ChatMessage], *, context_window: int, reserve_output: int
) -> list[ChatMessage]:
    """Keep the system message(s), the current turn and the newest history that fits.

    The current turn (from the last user message on) is always kept, even when it alone
    is over budget; older history is dropped oldest first, a tool call together with its
    results, and the kept history never starts with an assistant or tool message.
    """
    system = [m for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    last_user = max((i for i, m in enumerate(rest) if m.role == "user"), default=0)
    current, history = rest[last_user:], rest[:last_user]
    budget = context_window - reserve_output
    budget -= sum(estimate_tokens(m) for m in system) + sum(estimate_tokens(m) for m in current)
    kept: list[ChatMessage] = []
    for group in reversed(_groups(history)):
        cost = sum(estimate_tokens(m) for m in group)
        if cost > budget:
            break
        budget -= cost
        kept[:0] = group
    while kept and kept[0].role != "user":
        kept.pop(0)
    return [*system, *kept, *current]
