"""Sampling options beyond temperature and the output limit (the OpenAI-compatible API
passes them through): each provider dialect writes them into its own request body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Sampling:
    """`top_p`, `stop` sequences, `seed` and `response_format` (OpenAI's shape)."""

    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    response_format: dict[str, Any] | None = None


def for_openai(body: dict[str, Any], sampling: Sampling | None) -> None:
    """Chat Completions takes them as they are."""
    if sampling is None:
        return
    if sampling.top_p is not None:
        body["top_p"] = sampling.top_p
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if sampling.response_format is not None:
        body["response_format"] = sampling.response_format


def for_anthropic(body: dict[str, Any], sampling: Sampling | None) -> None:
    """Messages API: `top_p`, `stop_sequences` (no seed, no response format)."""
    if sampling is None:
        return
    if sampling.top_p is not None and "thinking" not in body:  # thinking refuses top_p < 1
        body["top_p"] = sampling.top_p
    if sampling.stop:
        body["stop_sequences"] = list(sampling.stop)


def for_google(body: dict[str, Any], sampling: Sampling | None) -> None:
    """Gemini: `generationConfig` topP, stopSequences, seed, a JSON answer's MIME type."""
    if sampling is None:
        return
    config: dict[str, Any] = body.setdefault("generationConfig", {})
    if sampling.top_p is not None:
        config["topP"] = sampling.top_p
    if sampling.stop:
        config["stopSequences"] = list(sampling.stop)
    if sampling.seed is not None:
        config["seed"] = sampling.seed
    if (sampling.response_format or {}).get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"


def for_responses(body: dict[str, Any], sampling: Sampling | None) -> None:
    """Responses API: `top_p` and `text.format` (no stop sequences, no seed)."""
    if sampling is None:
        return
    if sampling.top_p is not None and "reasoning" not in body:
        body["top_p"] = sampling.top_p
    wanted = sampling.response_format or {}
    if wanted.get("type") == "json_object":
        body["text"] = {"format": {"type": "json_object"}}
    elif wanted.get("type") == "json_schema" and isinstance(wanted.get("json_schema"), dict):
        body["text"] = {"format": {"type": "json_schema", **wanted["json_schema"]}}
