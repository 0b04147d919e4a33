"""Cached input tokens from every provider, and the cost arithmetic that prices them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from app.services.llm import Usage
from app.services.llm.base import Pricing
from test.fakes.llm_upstream import FakeUpstream, Reply
from test.fakes.new_upstreams import NewFakeUpstream, start_new_fake_upstream
from test.services.llm.conftest import base_url_for, make_provider
from test.services.llm.new_support import new_model, new_provider
from test.services.llm.support import collect, model_for, user

PRICES = Pricing(input_per_mtok=3.0, output_per_mtok=15.0, cached_input_per_mtok=0.3)


def test_cached_tokens_are_priced_apart_from_the_rest_of_the_input() -> None:
    # 1000 input of which 400 cached, 200 output: 600*3 + 400*0.3 + 200*15 = 4920 per M
    cost = PRICES.cost_usd(input_tokens=1000, output_tokens=200, cached_input_tokens=400)
    assert cost == pytest.approx(0.00492)


def test_without_a_cached_price_cached_tokens_cost_the_input_price() -> None:
    plain = Pricing(input_per_mtok=2.0, output_per_mtok=8.0)
    cost = plain.cost_usd(input_tokens=1_000_000, output_tokens=0, cached_input_tokens=500_000)
    assert cost == pytest.approx(2.0)


def test_a_cached_count_above_the_input_is_capped() -> None:
    cost = PRICES.cost_usd(input_tokens=100, output_tokens=0, cached_input_tokens=1000)
    assert cost == pytest.approx(100 * 0.3 / 1_000_000)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_openai_and_anthropic_report_cached_input_tokens(
    kind: str, fake: FakeUpstream, http: aiohttp.ClientSession, environ: dict[str, str]
) -> None:
    fake.script(Reply.text("Hi there", usage=(1000, 7), cached_tokens=600))
    provider = make_provider(kind, http, environ)
    events, error = await collect(provider, model_for(kind, base_url_for(kind, fake)), user("x"))
    assert error is None
    assert Usage(1000, 7, 600) in events


@pytest.fixture
async def new_fake() -> AsyncIterator[NewFakeUpstream]:
    """A fresh Responses + Gemini fake per test."""
    async with start_new_fake_upstream() as upstream:
        yield upstream


@pytest.mark.parametrize("kind", ["openai_responses", "google"])
async def test_responses_and_gemini_report_cached_input_tokens(
    kind: str, new_fake: NewFakeUpstream, http: aiohttp.ClientSession, environ: dict[str, str]
) -> None:
    new_fake.script(Reply.text("Hi there", usage=(1000, 7), cached_tokens=250))
    provider = new_provider(kind, http, environ)
    events, error = await collect(provider, new_model(kind, new_fake), user("x"))
    assert error is None
    assert Usage(1000, 7, 250) in events
