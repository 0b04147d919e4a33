"""Provider for the Gemini API (`models/{model}:streamGenerateContent?alt=sse`).

The key travels in the `x-goog-api-key` header, never in the URL (URLs are logged).
Gemini gives function calls no ids (older models) and wants them answered by name, so
calls get ids made here and results are matched back to their call's name. Gemini 3
models also want the `thoughtSignature` of a function call they made sent back with it:
the provider remembers the signatures of the calls it saw (the tool loop runs in this
process) and, for a call it has no signature for (another worker, a restart), sends the
validator-skip value Google documents for histories built elsewhere.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from base64 import b64encode
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from app.services.llm.base import (
    ChatMessage,
    ImagePart,
    LLMEvent,
    ModelConfig,
    ProviderError,
    ReasoningDelta,
    TextDelta,
    TextPart,
    ToolCallRequest,
)
from app.services.llm.google_reader import ChunkReader
from app.services.llm.google_schema import gemini_parameters
from app.services.llm.sampling import Sampling, for_google
from app.services.llm.transport import api_key, join_url, open_stream
from app.services.tools import Tool

PROVIDER = "google"
OWN_ID_PREFIX = "gemini_call_"  # ids made here are not Gemini's: never sent back as `id`
SKIP_SIGNATURE = "skip_thought_signature_validator"  # Google's value for foreign histories
MAX_SIGNATURES = 10_000  # remembered call signatures (a few hundred bytes each)
_SIGNED_MODELS = re.compile(r"gemini-(\d+)")
_BAD_KEY = "API key not valid"  # Gemini answers a wrong key with 400 INVALID_ARGUMENT


def call_id(response_id: str | None, index: int, name: str) -> str:
    """An id for a call Gemini gave none: the same call of the same response gets the same one."""
    if not response_id:
        return OWN_ID_PREFIX + uuid.uuid4().hex[:24]
    seed = f"{response_id}/{index}/{name}".encode()
    return OWN_ID_PREFIX + hashlib.sha256(seed).hexdigest()[:24]


def _needs_signatures(model: ModelConfig) -> bool:
    """Gemini 3 and later refuse a replayed function call without its thought signature."""
    match = _SIGNED_MODELS.search(model.model)
    return match is not None and int(match.group(1)) >= 3


def _user_parts(message: ChatMessage) -> list[dict[str, Any]]:
    """A user message's text, then its attachments (images as `inline_data`)."""
    parts: list[dict[str, Any]] = [{"text": message.content}] if message.content else []
    for part in message.parts or ():
        if isinstance(part, ImagePart):
            data = b64encode(part.data).decode()
            parts.append({"inline_data": {"mime_type": part.media_type, "data": data}})
        elif isinstance(part, TextPart):
            parts.append({"text": part.text})
    return parts


def build_contents(
    messages: list[ChatMessage], *, signatures: Mapping[str, str], signed: bool
) -> tuple[str, list[dict[str, Any]]]:
    """The system text and the `contents` (roles user/model, consecutive turns merged)."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for message in messages:
        role = "user"
        parts: list[dict[str, Any]] = []
        if message.role == "system":
            if message.content:
                system.append(message.content)
            continue
        if message.role == "tool":
            answered = message.tool_call_id or ""
            answer: dict[str, Any] = {
                "name": names.get(answered, "tool"),
                "response": {"result": message.content},
            }
            if answered and not answered.startswith(OWN_ID_PREFIX):
                answer["id"] = answered
            parts.append({"functionResponse": answer})
        elif message.role == "assistant":
            role = "model"
            if message.content:
                parts.append({"text": message.content})
            for number, call in enumerate(message.tool_calls or ()):
                names[call.id] = call.name
                function: dict[str, Any] = {"name": call.name, "args": call.arguments}
                if not call.id.startswith(OWN_ID_PREFIX):
                    function["id"] = call.id
                part: dict[str, Any] = {"functionCall": function}
                signature = signatures.get(call.id)
                if signature is None and signed and number == 0:
                    signature = SKIP_SIGNATURE  # only a step's first call carries one
                if signature is not None:
                    part["thoughtSignature"] = signature
                parts.append(part)
        else:
            parts += _user_parts(message)
        if not parts:
            continue  # Gemini refuses empty parts
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)  # parallel results go back in one turn
        else:
            contents.append({"role": role, "parts": parts})
    return "\n\n".join(system), contents


def build_request(
    *,
    model: ModelConfig,
    messages: list[ChatMessage],
    tools: list[Tool],
    temperature: float | None,
    max_tokens: int | None,
    signatures: Mapping[str, str],
) -> dict[str, Any]:
    """The JSON body of one streamGenerateContent request."""
    system, contents = build_contents(
        messages, signatures=signatures, signed=_needs_signatures(model)
    )
    config: dict[str, Any] = {
        "maxOutputTokens": min(max_tokens or model.max_output_tokens, model.max_output_tokens)
    }
    temp = temperature if temperature is not None else model.temperature
    if temp is not None:
        config["temperature"] = temp
    if model.reasoning is not None:
        thinking: dict[str, Any] = {"includeThoughts": True}
        if model.reasoning.budget_tokens is not None:
            thinking["thinkingBudget"] = model.reasoning.budget_tokens
            # thoughts count against maxOutputTokens: the answer keeps its own cap on top
            config["maxOutputTokens"] += model.reasoning.budget_tokens
        elif model.reasoning.effort is not None:  # Gemini 3's levels
            thinking["thinkingLevel"] = model.reasoning.effort
        config["thinkingConfig"] = thinking
    body: dict[str, Any] = {"contents": contents, "generationConfig": config}
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    if tools and model.supports_tools:
        declarations = []
        for tool in tools:
            declaration: dict[str, Any] = {
                "name": tool.qualified_name,
                "description": tool.description,
            }
            parameters = gemini_parameters(tool.input_schema)
            if parameters is not None:
                declaration["parameters"] = parameters
            declarations.append(declaration)
        body["tools"] = [{"functionDeclarations": declarations}]
    return body


def stream_url(model: ModelConfig) -> str:
    """The streaming endpoint of the model (no key in it)."""
    name = model.model.removeprefix("models/")
    return join_url(model.base_url, f"/models/{quote(name, safe='-._')}:streamGenerateContent")


class GoogleProvider:
    """Streams from the Gemini API over a shared aiohttp session."""

    def __init__(self, *, session: aiohttp.ClientSession, environ: Mapping[str, str]) -> None:
        """Use the lifespan-owned `session`; read keys from `environ` at call time."""
        self._session = session
        self._environ = environ
        self._signatures: OrderedDict[str, str] = OrderedDict()

    def _remember(self, calls: list[tuple[ToolCallRequest, str | None]]) -> None:
        """Keep the signatures of new calls for the next request of the tool loop."""
        for call, signature in calls:
            if signature:
                self._signatures[call.id] = signature
                self._signatures.move_to_end(call.id)
        while len(self._signatures) > MAX_SIGNATURES:
            self._signatures.popitem(last=False)

    async def stream(
        self,
        *,
        model: ModelConfig,
        messages: list[ChatMessage],
        tools: list[Tool],
        temperature: float | None,
        max_tokens: int | None,
        sampling: Sampling | None = None,
    ) -> AsyncIterator[LLMEvent]:
        """Yield text and thought deltas as they arrive, then tool calls, usage and finish."""
        key = api_key(model=model, environ=self._environ)
        body = build_request(
            model=model,
            messages=messages,
            tools=tools,
            temperature=temperature,
            max_tokens=max_tokens,
            signatures=self._signatures,
        )
        for_google(body, sampling)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if key:
            headers["x-goog-api-key"] = key
        reader = ChunkReader(key, make_id=call_id)
        try:
            async with open_stream(
                self._session,
                url=stream_url(model) + "?alt=sse",
                body=body,
                headers=headers,
                model=model,
                provider=PROVIDER,
                key=key,
            ) as payloads:
                async for data in payloads:
                    for thought, text in reader.handle(data):
                        yield ReasoningDelta(text) if thought else TextDelta(text)
                final = reader.final_events()
        except ProviderError as exc:
            if exc.code == "upstream_bad_request" and _BAD_KEY in exc.message:
                exc.code = "upstream_auth"  # a key problem, not the request's
            raise
        self._remember(reader.calls)
        for event in final:
            yield event
