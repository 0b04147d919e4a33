"""Helpers for the `openai_responses` and `google` provider tests."""

from __future__ import annotations

from typing import Any

import aiohttp

from app.services.llm import ModelConfig, Provider
from app.services.llm.google import GoogleProvider
from app.services.llm.openai_responses import OpenAIResponsesProvider
from test.fakes.new_upstreams import NewFakeUpstream
from test.services.llm.support import model_for

NEW_KINDS = ("openai_responses", "google")


def new_provider(kind: str, http: aiohttp.ClientSession, environ: dict[str, str]) -> Provider:
    """The provider class for `kind` over `http`."""
    cls = OpenAIResponsesProvider if kind == "openai_responses" else GoogleProvider
    return cls(session=http, environ=environ)


def new_model(kind: str, fake: NewFakeUpstream, **overrides: Any) -> ModelConfig:
    """A model config of `kind` pointing at the fake."""
    if kind == "google":
        overrides.setdefault("model", "gemini-2.5-flash")
        return model_for(kind, fake.google_base_url, **overrides)
    return model_for(kind, fake.responses_base_url, **overrides)
