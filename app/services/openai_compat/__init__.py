"""The OpenAI-compatible API (`/v1`): requests translated to the provider layer, answers
encoded in OpenAI's wire format, stored exchanges run as chat turns."""

from app.services.openai_compat.respond import (
    collect,
    model_cards,
    shutdown_frame,
    stream_frames,
)
from app.services.openai_compat.service import Answer, CompletionService

__all__ = [
    "Answer",
    "CompletionService",
    "collect",
    "model_cards",
    "shutdown_frame",
    "stream_frames",
]
