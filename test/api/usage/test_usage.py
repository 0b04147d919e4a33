"""Answers carry their cost; `/users/me/usage` and `/admin/usage` add it up (both DBs)."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest

from app.state import AppState
from test.fakes.llm_upstream import Reply
from test.support.assertions import assert_error
from test.support.auth import make_admin, register_and_login
from test.support.sse import stream_chat


async def _answer(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> Any:
    """Stream one answer to its end; the saved assistant message."""
    events = await stream_chat(client, headers, **body)
    assert events[-1].name == "done", events[-1]
    conversation_id = events[0].data["conversation_id"]
    found = await client.get(f"/chat/history/{conversation_id}", headers=headers)
    assert found.status_code == 200, found.text
    return next(m for m in found.json()["messages"] if m["role"] == "assistant")


async def test_an_answer_is_saved_with_its_cost(client: httpx.AsyncClient, alice: dict) -> None:
    answer = await _answer(client, alice["headers"], message="one two three", model="echo-priced")
    usage = answer["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    expected = (usage["input_tokens"] * 1000 + usage["output_tokens"] * 2000) / 1_000_000
    assert usage["cost_usd"] == pytest.approx(expected)


async def test_a_model_without_pricing_has_a_null_cost(
    client: httpx.AsyncClient, alice: dict
) -> None:
    answer = await _answer(client, alice["headers"], message="hello", model="vektor-echo")
    assert answer["usage"]["cost_usd"] is None
    assert answer["usage"]["output_tokens"] > 0


async def test_cached_input_tokens_are_priced_at_their_own_rate(
    client: httpx.AsyncClient, alice: dict, upstream: Any
) -> None:
    upstream.script(Reply.text("Hi there", usage=(1000, 10), cached_tokens=400))
    answer = await _answer(client, alice["headers"], message="x", model="fake-openai-priced")
    usage = answer["usage"]
    assert (usage["input_tokens"], usage["cached_input_tokens"]) == (1000, 400)
    assert usage["cost_usd"] == pytest.approx((600 * 3 + 400 * 0.3 + 10 * 15) / 1_000_000)


async def test_my_usage_groups_by_model_and_day(
    client: httpx.AsyncClient, alice: dict, bob: dict
) -> None:
    h = alice["headers"]
    priced = [await _answer(client, h, message=f"word {n}", model="echo-priced") for n in (1, 2)]
    plain = await _answer(client, h, message="plain", model="vektor-echo")
    await _answer(client, bob["headers"], message="not alice's", model="echo-priced")

    mine = (await client.get("/users/me/usage", params={"group_by": "model"}, headers=h)).json()
    by_model = {item["key"]: item for item in mine["items"]}
    assert set(by_model) == {"echo-priced", "vektor-echo"}
    assert by_model["echo-priced"]["messages"] == 2
    assert by_model["echo-priced"]["input_tokens"] == sum(
        a["usage"]["input_tokens"] for a in priced
    )
    assert by_model["echo-priced"]["cost_usd"] == pytest.approx(
        sum(a["usage"]["cost_usd"] for a in priced)
    )
    assert by_model["vektor-echo"]["cost_usd"] == 0  # unknown prices add nothing
    assert mine["totals"]["messages"] == 3
    assert mine["totals"]["output_tokens"] == sum(
        a["usage"]["output_tokens"] for a in [*priced, plain]
    )
    assert mine["quota"] == {
        "tokens_per_day": None,
        "tokens_today": mine["totals"]["input_tokens"] + mine["totals"]["output_tokens"],
        "cost_per_month": None,
        "cost_this_month": pytest.approx(mine["totals"]["cost_usd"]),
    }

    by_day = (await client.get("/users/me/usage", params={"group_by": "day"}, headers=h)).json()
    today = priced[0]["created_at"][:10]
    assert [(i["key"], i["messages"]) for i in by_day["items"]] == [(today, 3)]

    before = {"from": "2020-01-01", "to": "2020-01-31"}
    empty = (await client.get("/users/me/usage", params=before, headers=h)).json()
    assert empty["items"] == [] and empty["totals"]["messages"] == 0


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-02-01", "to": "2026-01-01"},
        {"from": "2020-01-01", "to": "2026-01-01"},
        {"from": "yesterday"},
        {"group_by": "user"},
    ],
)
async def test_bad_ranges_are_refused(
    client: httpx.AsyncClient, alice: dict, params: dict[str, str]
) -> None:
    response = await client.get("/users/me/usage", params=params, headers=alice["headers"])
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


async def test_admins_see_every_user_and_csv(
    client: httpx.AsyncClient, alice: dict, bob: dict, state: AppState
) -> None:
    a = await _answer(client, alice["headers"], message="alpha beta", model="echo-priced")
    b = await _answer(client, bob["headers"], message="gamma", model="echo-priced")
    assert_error(await client.get("/admin/usage", headers=alice["headers"]), 403, "forbidden")
    root = await register_and_login(client, "root")
    await make_admin(state, root["user"]["id"])
    h = root["headers"]

    report = (await client.get("/admin/usage", params={"group_by": "user"}, headers=h)).json()
    by_user = {item["key"]: item for item in report["items"]}
    assert set(by_user) == {alice["user"]["id"], bob["user"]["id"]}
    assert by_user[bob["user"]["id"]]["output_tokens"] == b["usage"]["output_tokens"]

    response = await client.get(
        "/admin/usage", params={"group_by": "model", "format": "csv"}, headers=h
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["key"] for row in rows] == ["echo-priced", "total"]
    assert int(rows[0]["messages"]) == 2
    cost = a["usage"]["cost_usd"] + b["usage"]["cost_usd"]
    assert float(rows[-1]["cost_usd"]) == pytest.approx(cost)

    page = (await client.get("/admin/users", headers=h)).json()["items"]
    spent = {item["id"]: item["usage_this_month"] for item in page}
    assert spent[alice["user"]["id"]] == {
        "tokens": a["usage"]["input_tokens"] + a["usage"]["output_tokens"],
        "cost_usd": pytest.approx(a["usage"]["cost_usd"]),
    }
    assert spent[root["user"]["id"]] == {"tokens": 0, "cost_usd": 0.0}


async def test_my_usage_shows_the_storage_my_files_take(
    client: httpx.AsyncClient, alice: dict, state: AppState
) -> None:
    from test.api.files.helpers import upload

    before = (await client.get("/users/me/usage", headers=alice["headers"])).json()
    assert before["storage_bytes"] == 0
    assert before["storage_quota_bytes"] == state.settings.user_storage_quota_bytes
    data = b"twelve bytes\n" * 10
    assert (await upload(client, alice, "notes.txt", data)).status_code == 201
    after = (await client.get("/users/me/usage", headers=alice["headers"])).json()
    assert after["storage_bytes"] == len(data)
