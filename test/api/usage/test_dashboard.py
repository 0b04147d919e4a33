"""The status report's usage block (user data only for admins) and the /metrics counters."""

from __future__ import annotations

import re

import httpx

from app.state import AppState
from test.support.auth import make_admin, register_and_login
from test.support.sse import stream_chat


async def test_status_shows_todays_usage_per_model_and_top_users_only_to_admins(
    client: httpx.AsyncClient, alice: dict, state: AppState
) -> None:
    events = await stream_chat(client, alice["headers"], message="a b c", model="echo-priced")
    used = next(e.data for e in events if e.name == "usage")
    public = (await client.get("/api/status")).json()["usage"]
    today = {item["key"]: item for item in public["today_by_model"]}
    assert today["echo-priced"]["output_tokens"] == used["output_tokens"]
    assert today["echo-priced"]["cost_usd"] > 0
    assert "top_users_this_month" not in public
    as_alice = (await client.get("/api/status", headers=alice["headers"])).json()["usage"]
    assert "top_users_this_month" not in as_alice
    assert alice["user"]["id"] not in str(public) + str(as_alice)

    root = await register_and_login(client, "root")
    await make_admin(state, root["user"]["id"])
    admin = (await client.get("/api/status", headers=root["headers"])).json()["usage"]
    assert [u["key"] for u in admin["top_users_this_month"]] == [alice["user"]["id"]]


async def test_metrics_count_tokens_and_cost_per_model(
    client: httpx.AsyncClient, alice: dict, state: AppState
) -> None:
    await stream_chat(client, alice["headers"], message="x y", model="echo-priced")
    await make_admin(state, alice["user"]["id"])
    text = (await client.get("/metrics", headers=alice["headers"])).text
    cost = re.search(r'^vektor_llm_cost_usd_total\{model="echo-priced"\} (\S+)$', text, re.M)
    assert cost is not None and float(cost.group(1)) > 0
    tokens = re.search(
        r'^vektor_llm_tokens_total\{kind="output",model="echo-priced"\} (\S+)$', text, re.M
    )
    assert tokens is not None and float(tokens.group(1)) >= 2
