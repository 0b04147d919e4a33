"""An OpenAI Chat Completions request in the provider layer's terms: messages and tools.

Roles map one to one (`developer` is a system message); content-part arrays become the
text of their `text` parts; an assistant's `tool_calls` (arguments as JSON text) become
`ToolCallRequest`s, and `tool` messages answer them by `tool_call_id`, so every provider
renders the history in its own format. Client tools become `Tool`s of the pseudo-server
`client` whose model-facing name is the function name itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.errors import BadRequest
from app.schemas.openai_compat import (
    ChatCompletionRequest,
    ImageContentPart,
    Message,
    TextContentPart,
)
from app.services.llm import ChatMessage, ToolCallRequest
from app.services.llm.base import ImagePart
from app.services.llm.transport import decode_arguments
from app.services.tools import Tool

CLIENT_TOOL_SERVER = "client"
EMPTY_SCHEMA = {"type": "object", "properties": {}}


@dataclass(slots=True)
class Translated:
    """The request's conversation and tools as the providers take them."""

    messages: list[ChatMessage]
    tools: list[Tool]
    images: list[tuple[int, int, str]]  # (message index, part index, data URL) to load


class InvalidRequest(BadRequest):
    """A 400 that names the offending request field (OpenAI's `param`)."""

    code = "invalid_request"

    def __init__(self, detail: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.param = param


invalid = InvalidRequest


def _text_of(message: Message, index: int) -> tuple[str, list[tuple[int, str]]]:
    """A message's text, and the image URLs among its parts (by part index)."""
    content = message.content
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[tuple[int, str]] = []
    for at, part in enumerate(content):
        if isinstance(part, TextContentPart):
            texts.append(part.text)
        elif isinstance(part, ImageContentPart) and message.role == "user":
            images.append((at, part.image_url.url))
        else:
            raise invalid(
                f"Content parts of type {part.type!r} are not supported in a "
                f"{message.role} message; send text (and image_url in user messages)",
                param=f"messages.[{index}].content.[{at}].type",
            )
    return "\n".join(texts), images


def _message(message: Message, index: int) -> tuple[ChatMessage, list[tuple[int, str]]]:
    """One request message as a provider message."""
    text, images = _text_of(message, index)
    role = message.role
    if role in ("system", "developer"):
        return ChatMessage(role="system", content=text), []
    if role == "tool":
        if not message.tool_call_id:
            raise invalid(
                "A tool message needs the tool_call_id it answers",
                param=f"messages.[{index}].tool_call_id",
            )
        return ChatMessage(role="tool", content=text, tool_call_id=message.tool_call_id), []
    if role == "assistant":
        calls = [
            ToolCallRequest(call.id, call.function.name, decode_arguments(call.function.arguments))
            for call in message.tool_calls or ()
        ]
        return ChatMessage(role="assistant", content=text, tool_calls=calls or None), []
    return ChatMessage(role="user", content=text), images


def _tools(body: ChatCompletionRequest) -> list[Tool]:
    """The client's function tools (none with `tool_choice: "none"`)."""
    if not body.tools or body.tool_choice == "none":
        return []
    seen: set[str] = set()
    tools: list[Tool] = []
    for at, tool in enumerate(body.tools):
        name = tool.function.name
        if name in seen:
            raise invalid(f"Two tools are named {name!r}", param=f"tools.[{at}].function.name")
        seen.add(name)
        tools.append(
            Tool(
                server=CLIENT_TOOL_SERVER,
                name=name,
                qualified_name=name,
                description=tool.function.description or "",
                input_schema=tool.function.parameters or EMPTY_SCHEMA,
                kind="client",
            )
        )
    return tools


def check_supported(body: ChatCompletionRequest) -> None:
    """Refuse, with a clear 400, what this server deliberately does not do."""
    if body.n not in (None, 1):
        raise invalid("Only n=1 is supported", param="n")
    if body.logprobs:
        raise invalid("logprobs are not available from this server", param="logprobs")
    answered = {m.tool_call_id or "" for m in body.messages if m.role == "tool"}
    asked = {c.id for m in body.messages if m.role == "assistant" for c in m.tool_calls or ()}
    if unknown := answered - asked:
        raise invalid(
            f"A tool message answers no earlier tool call: {sorted(unknown)[0]!r}",
            param="messages",
        )


def translate(body: ChatCompletionRequest) -> Translated:
    """The request's messages and tools for the provider layer (400 for what cannot map)."""
    check_supported(body)
    messages: list[ChatMessage] = []
    images: list[tuple[int, int, str]] = []
    for index, message in enumerate(body.messages):
        translated, urls = _message(message, index)
        images.extend((index, at, url) for at, url in urls)
        messages.append(translated)
    return Translated(messages=messages, tools=_tools(body), images=images)


def with_images(translated: Translated, parts: dict[int, list[ImagePart]]) -> list[ChatMessage]:
    """The messages with their loaded images attached (as the attachment path does)."""
    out = list(translated.messages)
    for index, images in parts.items():
        message = out[index]
        out[index] = ChatMessage(role=message.role, content=message.content, parts=list(images))
    return out
