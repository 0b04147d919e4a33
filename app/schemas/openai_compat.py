"""`/v1/chat/completions`: the OpenAI Chat Completions request, as real clients send it.

Fields the server honours are typed; fields it accepts but does not forward are typed too
(so a bad value is still a clear 400); any other field is ignored on purpose (`extra="ignore"`):
OpenAI adds request fields often (`metadata`, `service_tier`, `prediction`, `audio`,
`modalities`, `reasoning_effort`, `frequency_penalty`, `presence_penalty`, `logit_bias`, ...)
and a client library sending one must keep working. README "OpenAI-compatible API" lists
what is honoured, accepted and refused.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from app.schemas.common import JsonObject, Text

MAX_CONTENT_CHARS = 1_000_000  # one message's text (the model's context cuts it further)
MAX_MESSAGES = 2000
MAX_TOOLS = 128
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class CompatModel(BaseModel):
    """Base of the /v1 request parts: unknown fields are ignored (OpenAI adds them often)."""

    model_config = ConfigDict(extra="ignore")


class TextContentPart(CompatModel):
    """`{"type": "text", "text": ...}`."""

    type: Literal["text"]
    text: Annotated[Text, Field(max_length=MAX_CONTENT_CHARS)]


class ImageUrl(CompatModel):
    """`image_url.url`: a `data:` URL or an http(s) address."""

    url: Annotated[str, Field(max_length=30_000_000)]
    detail: str | None = None


class ImageContentPart(CompatModel):
    """`{"type": "image_url", "image_url": {"url": ...}}`."""

    type: Literal["image_url"]
    image_url: ImageUrl


class OtherContentPart(CompatModel):
    """Any other part type (`input_audio`, `file`, `refusal`, ...): refused with a clear 400."""

    type: Annotated[str, Field(max_length=64)]


ContentPart = TextContentPart | ImageContentPart | OtherContentPart
Content = Annotated[Text, Field(max_length=MAX_CONTENT_CHARS)] | list[ContentPart]


class FunctionCall(CompatModel):
    """An assistant's call: the function's name and its arguments as JSON text."""

    name: Annotated[str, Field(pattern=TOOL_NAME_PATTERN)]
    arguments: Annotated[Text, Field(max_length=MAX_CONTENT_CHARS)] = "{}"


class ToolCall(CompatModel):
    """One entry of an assistant message's `tool_calls`."""

    id: Annotated[Text, Field(min_length=1, max_length=200)]
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(CompatModel):
    """One message of `messages` (roles system, developer, user, assistant, tool)."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Content | None = None
    name: Annotated[str, Field(max_length=200)] | None = None
    tool_calls: Annotated[list[ToolCall], Field(max_length=MAX_TOOLS)] | None = None
    tool_call_id: Annotated[Text, Field(max_length=200)] | None = None


class FunctionDefinition(CompatModel):
    """A client tool: its name, description and JSON Schema parameters."""

    name: Annotated[str, Field(pattern=TOOL_NAME_PATTERN)]
    description: Annotated[Text, Field(max_length=10_000)] | None = None
    parameters: JsonObject | None = None
    strict: bool | None = None


class ToolDefinition(CompatModel):
    """One entry of `tools`."""

    type: Literal["function"]
    function: FunctionDefinition


class NamedToolChoice(CompatModel):
    """`tool_choice: {"type": "function", "function": {"name": ...}}`."""

    type: Literal["function"]
    function: JsonObject


class StreamOptions(CompatModel):
    """`stream_options`: `include_usage` adds a last chunk with `usage` and no choices."""

    include_usage: StrictBool = False


class VektorOptions(BaseModel):
    """The extra body field `vektor` (Vektor's own; unknown keys are an error here)."""

    model_config = ConfigDict(extra="forbid")

    mcp: StrictBool = Field(
        default=False, description="run the server's MCP tools and adapters in the agent loop"
    )
    store: StrictBool = Field(
        default=False, description="save the exchange as a conversation (history, sync)"
    )
    conversation_id: uuid.UUID | None = Field(
        default=None, description="the stored conversation to add the exchange to"
    )


class ChatCompletionRequest(CompatModel):
    """`POST /v1/chat/completions`."""

    model: Annotated[Text, Field(min_length=1, max_length=200)]
    messages: Annotated[list[Message], Field(min_length=1, max_length=MAX_MESSAGES)]
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    tools: Annotated[list[ToolDefinition], Field(max_length=MAX_TOOLS)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    logprobs: bool | None = None
    # passed to the provider where its API has them (app/services/llm/sampling.py)
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    stop: (
        Annotated[Text, Field(max_length=1000)]
        | Annotated[list[Annotated[Text, Field(max_length=1000)]], Field(max_length=4)]
        | None
    ) = None
    seed: int | None = None
    response_format: JsonObject | None = None
    # accepted, not forwarded
    user: Annotated[str, Field(max_length=1000)] | None = None
    vektor: VektorOptions | None = None

    @property
    def output_limit(self) -> int | None:
        """`max_completion_tokens`, else the older `max_tokens`."""
        return self.max_completion_tokens or self.max_tokens


class ModelCard(BaseModel):
    """One entry of `GET /v1/models`."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelCardList(BaseModel):
    """`GET /v1/models`."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class OpenAIError(BaseModel):
    """The `error` of an OpenAI error body."""

    message: str
    type: str
    code: str | None
    param: str | None


class OpenAIErrorBody(BaseModel):
    """Every error on `/v1/*`: `{"error": {message, type, code, param}}`."""

    error: OpenAIError
