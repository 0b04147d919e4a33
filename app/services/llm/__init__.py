"""LLM providers behind one streaming interface (see `base` for the event order contract).

Typical use (the registry is created and started in the app lifespan)::

    model = registry.get(model_id)
    provider = registry.provider_for(model)
    async for event in provider.stream(
        model=model, messages=messages, tools=tools, temperature=None, max_tokens=None
    ):
        ...  # (TextDelta | ReasoningDelta)* -> ToolCallRequest* -> Usage? -> Finish
"""

from app.services.llm.base import (
    PROVIDER_ERROR_CODES,
    ChatMessage,
    Finish,
    FinishReason,
    LLMEvent,
    ModelConfig,
    ModelConfigError,
    Provider,
    ProviderError,
    ReasoningBlock,
    ReasoningDelta,
    TextDelta,
    ToolCallRequest,
    Usage,
    storable_event,
)
from app.services.llm.context import estimate_tokens, fit_to_context
from app.services.llm.registry import ECHO_MODEL_ID, ModelRegistry

__all__ = [
    "ECHO_MODEL_ID",
    "PROVIDER_ERROR_CODES",
    "ChatMessage",
    "Finish",
    "FinishReason",
    "LLMEvent",
    "ModelConfig",
    "ModelConfigError",
    "ModelRegistry",
    "Provider",
    "ProviderError",
    "ReasoningBlock",
    "ReasoningDelta",
    "TextDelta",
    "ToolCallRequest",
    "Usage",
    "estimate_tokens",
    "fit_to_context",
    "storable_event",
]
