"""Sampling options in each provider dialect's request body (the /v1 pass-through)."""

from __future__ import annotations

from typing import Any

from app.services.llm.sampling import Sampling, for_anthropic, for_google, for_responses

SCHEMA = {"name": "answer", "schema": {"type": "object"}, "strict": True}
ALL = Sampling(
    top_p=0.9,
    stop=("END",),
    seed=3,
    response_format={"type": "json_schema", "json_schema": SCHEMA},
)


def test_gemini_takes_them_in_its_generation_config() -> None:
    body: dict[str, Any] = {"generationConfig": {"temperature": 0.2}}
    for_google(body, ALL)
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "stopSequences": ["END"],
        "seed": 3,
        "responseMimeType": "application/json",
    }


def test_responses_api_takes_top_p_and_a_text_format() -> None:
    body: dict[str, Any] = {}
    for_responses(body, ALL)
    assert body == {"top_p": 0.9, "text": {"format": {"type": "json_schema", **SCHEMA}}}
    reasoning: dict[str, Any] = {"reasoning": {"effort": "low"}}
    for_responses(reasoning, Sampling(top_p=0.5))
    assert "top_p" not in reasoning  # reasoning models accept only the default


def test_anthropic_thinking_keeps_its_default_top_p() -> None:
    body: dict[str, Any] = {"thinking": {"type": "enabled"}}
    for_anthropic(body, ALL)
    assert body == {"thinking": {"type": "enabled"}, "stop_sequences": ["END"]}


def test_nothing_given_changes_nothing() -> None:
    body: dict[str, Any] = {"model": "m"}
    for fn in (for_google, for_responses, for_anthropic):
        fn(body, None)
    assert body == {"model": "m"}
