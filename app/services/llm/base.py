"""The provider-neutral streaming interface: events, messages, model configs and errors.

A provider turns a conversation into a stream of `LLMEvent`s. The order is always: any
number of `TextDelta`s and `ReasoningDelta`s (interleaved as the upstream sent them), then
the `ToolCallRequest`s the model made (if any), then at most one `Usage` (when the upstream
reported it), then exactly one `Finish`, which is last.
Failures are raised as `ProviderError`; the caller knows whether it already got an event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from app.core.config import ConfigError
from app.core.text import storable, storable_tree, unstorable
from app.services.llm.sampling import Sampling
from app.services.tools import Tool

FinishReason = Literal["stop", "length", "tool_calls"]
Role = Literal["system", "user", "assistant", "tool"]
ProviderKind = Literal["openai", "anthropic", "echo", "openai_responses", "google"]
PROVIDER_KINDS: tuple[str, ...] = ("openai", "anthropic", "echo", "openai_responses", "google")

PROVIDER_ERROR_CODES = frozenset(
    {
        "upstream_auth",
        "upstream_rate_limited",
        "upstream_unavailable",
        "upstream_timeout",
        "upstream_bad_request",
        "upstream_protocol",
        "upstream_error",
    }
)


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the assistant's text, in order."""

    content: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's visible reasoning (Anthropic thinking, `reasoning_content`,
    OpenAI reasoning summaries). Never part of the text, never shown to another model.

    `signature` (Anthropic): the end of a thinking block, with the signature the provider
    needs to see again when the block is replayed inside the same tool loop; `content` is then
    empty. `redacted` (Anthropic `redacted_thinking`): opaque data to replay, never shown."""

    content: str
    signature: str | None = None
    redacted: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """A tool call the model made; `arguments` is decoded (`{"_raw": text}` if it was not JSON)."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts the upstream reported for this call.

    `input_tokens` includes `cached_input_tokens` (the part read from the provider's prompt
    cache, billed at its own price)."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Finish:
    """Why the model stopped; always the last event of a stream."""

    reason: FinishReason


LLMEvent = TextDelta | ReasoningDelta | ToolCallRequest | Usage | Finish


def storable_event(event: LLMEvent) -> LLMEvent:
    """An upstream's text and tool call without what no database or response can carry.

    U+0000 and unpaired surrogates (`"\\ud800"` in the upstream's JSON): stored in a JSON
    column, one would break every later read of the conversation."""
    if type(event) is TextDelta:
        return TextDelta(storable(event.content)) if unstorable(event.content) else event
    if type(event) is ReasoningDelta:
        if unstorable(event.content):
            return ReasoningDelta(storable(event.content), event.signature, event.redacted)
        return event
    if type(event) is ToolCallRequest:
        return ToolCallRequest(
            id=storable(event.id),
            name=storable(event.name),
            arguments=storable_tree(event.arguments),
        )
    return event


@dataclass(frozen=True, slots=True)
class ReasoningBlock:
    """A finished piece of reasoning a provider must see again inside the same tool loop
    (Anthropic: a signed thinking block, or a redacted one's opaque `redacted` data).

    `model_id` is the model entry that produced it: a provider replays only its own model's
    blocks, so reasoning never reaches another model (a fallback, a different provider)."""

    model_id: str
    text: str = ""
    signature: str | None = None
    redacted: str | None = None


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image sent with a message, already resized and re-encoded for the provider
    (`data`: the bytes of `media_type`); `width`/`height` are the original's."""

    name: str
    media_type: str
    data: bytes
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class TextPart:
    """A document's or text file's text, ready for the prompt (its name and any cut note
    included); `summary` says what the file was (the echo model reports it)."""

    text: str
    summary: str = ""


@dataclass(frozen=True, slots=True)
class FileRef:
    """A stored attachment not loaded yet: the chat service turns it into an `ImagePart`
    or a `TextPart` before the model is called (providers skip it)."""

    file_id: str
    name: str
    kind: str


Part = ImagePart | TextPart | FileRef


@dataclass(slots=True)
class ChatMessage:
    """One message of the conversation as the provider sees it.

    `reasoning_blocks`: only on an assistant message of the running tool loop (never from
    history); providers that do not replay reasoning ignore them.
    `parts`: a user message's attachments, after `content`; each provider renders them."""

    role: Role
    content: str
    tool_calls: list[ToolCallRequest] | None = None
    tool_call_id: str | None = None
    reasoning_blocks: list[ReasoningBlock] | None = None
    parts: list[Part] | None = None


class ProviderError(Exception):
    """An upstream model call failed; `code` is one of `PROVIDER_ERROR_CODES`."""

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        self.code = code
        self.message = message
        self.status = status
        super().__init__(message)

    def __repr__(self) -> str:
        """Code, status and message (never a key: messages are redacted when built)."""
        return (
            f"ProviderError(code={self.code!r}, status={self.status!r}, message={self.message!r})"
        )


class ModelConfigError(ConfigError):
    """`model_configs.json` cannot be used; the message names the file, the model and the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReasoningConfig:
    """A model's `reasoning` entry: `effort` for OpenAI-style models, `budget_tokens` for
    Anthropic extended thinking (and Gemini's thinking budget)."""

    effort: Literal["low", "medium", "high"] | None = None
    budget_tokens: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pricing:
    """A model's prices in USD per million tokens; cached input defaults to the input price."""

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None

    def cost_usd(self, *, input_tokens: int, output_tokens: int, cached_input_tokens: int) -> float:
        """The cost of one answer's tokens (cached ones are part of `input_tokens`)."""
        cached = min(max(cached_input_tokens, 0), input_tokens)
        cached_price = (
            self.input_per_mtok
            if self.cached_input_per_mtok is None
            else self.cached_input_per_mtok
        )
        total = (
            (input_tokens - cached) * self.input_per_mtok
            + cached * cached_price
            + output_tokens * self.output_per_mtok
        )
        return round(total / 1_000_000, 8)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """One validated entry of `config/model_configs.json` (defaults already applied)."""

    id: str
    provider: ProviderKind
    name: str = ""
    model: str = ""
    base_url: str | None = None
    api_key_env: str | None = None
    context_window: int = 128000
    max_output_tokens: int = 4096
    supports_tools: bool = False
    supports_vision: bool = False
    temperature: float | None = None
    timeout_s: float = 120.0
    fallbacks: tuple[str, ...] = ()
    enabled: bool = True
    delay_ms: float | None = None  # echo only: pause before each delta (else ECHO_DELAY_MS)
    # {"effort": "low|medium|high"} (OpenAI-style) or {"budget_tokens": N} (Anthropic
    # thinking); None = off (CONFIG.md v1.1)
    reasoning: ReasoningConfig | None = None
    pricing: Pricing | None = None  # None: cost unknown (shown as null)


class Provider(Protocol):
    """Streams one model call; implementations are async generators."""

    def stream(
        self,
        *,
        model: ModelConfig,
        messages: list[ChatMessage],
        tools: list[Tool],
        temperature: float | None,
        max_tokens: int | None,
        sampling: Sampling | None = None,
    ) -> AsyncIterator[LLMEvent]:
        """Yield the events of one completion; raise `ProviderError` on failure (`sampling`:
        top_p, stop, seed, response format, each where the provider's API has it)."""
        ...
