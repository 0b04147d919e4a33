"""The pool over stdio: mcp-server-time, replicated test servers, killed processes, clean exits."""

from __future__ import annotations

import asyncio
import json

import psutil
import pytest

from test.services.mcp.conftest import FAST, PoolFactory, stdio_children, stdio_command
from test.support.waiting import eventually

TIME_SERVER = {
    "transport": "stdio",
    "command": "mcp-server-time",
    "args": ["--local-timezone", "UTC"],
    "idempotent_tools": ["get_current_time", "convert_time"],
    **FAST,
    "connect_timeout_s": 20,
}


@pytest.mark.slow
async def test_time_server_answers_and_comes_back_after_its_process_is_killed(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool({"time": TIME_SERVER})
    assert {t.qualified_name for t in pool.tools()} == {
        "time__get_current_time",
        "time__convert_time",
    }
    outcome = await pool.call("time__get_current_time", {"timezone": "Europe/Paris"})
    assert outcome.status == "ok"
    assert json.loads(outcome.content)["timezone"] == "Europe/Paris"

    [process] = stdio_children("mcp-server-time")
    replica = pool.groups["time"].replicas[0]
    process.kill()
    # the call waits for the reconnect instead of failing (an idempotent tool)
    again = await pool.call("time__get_current_time", {"timezone": "UTC"})
    assert again.status == "ok", again.content
    assert replica.generation == 2 and replica.reconnects == 1
    assert process.pid not in {p.pid for p in stdio_children("mcp-server-time")}


@pytest.mark.slow
async def test_stdio_replicas_share_the_load_and_exit_cleanly(make_pool: PoolFactory) -> None:
    marker = "--name stdio-pair"
    pool = await make_pool(
        {"s": {**stdio_command("stdio-pair"), "replicas": 2, "strategy": "round_robin"}}
    )
    await eventually(lambda: pool.status()[0]["status"] == "healthy", timeout_s=20)
    pids = {process.pid for process in stdio_children(marker)}
    assert len(pids) == 2
    answered = [json.loads((await pool.call("s__stats", {})).content)["pid"] for _ in range(4)]
    assert sorted(answered) == sorted([*pids, *pids])  # round robin: two calls each
    results = [await pool.call("s__echo", {"text": str(i)}) for i in range(4)]
    assert [r.content for r in results] == ["0", "1", "2", "3"]
    assert {e["in_flight"] for e in pool.status()[0]["endpoints"]} == {0}

    await pool.aclose()
    assert stdio_children(marker) == []
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


@pytest.mark.slow
async def test_a_killed_stdio_replica_is_routed_around(make_pool: PoolFactory) -> None:
    marker = "--name stdio-kill"
    pool = await make_pool(
        {
            "s": {
                **stdio_command("stdio-kill"),
                "replicas": 2,
                "strategy": "failover",
                "idempotent_tools": ["echo"],
            }
        }
    )
    replicas = pool.groups["s"].replicas
    await eventually(lambda: all(r.connected for r in replicas), timeout_s=20)
    victim = stdio_children(marker)[0]
    victim.kill()
    await eventually(lambda: not all(r.connected for r in replicas))
    outcomes = [await pool.call("s__add", {"a": 1, "b": i}) for i in range(5)]
    assert [o.status for o in outcomes] == ["ok"] * 5  # `add` is not idempotent: never sent
    await eventually(lambda: all(r.connected for r in replicas), timeout_s=20)
    assert sum(r.reconnects for r in replicas) == 1
    assert victim.pid not in {p.pid for p in stdio_children(marker)}
    assert len(stdio_children(marker)) == 2


@pytest.mark.slow
async def test_cancelled_stdio_call_is_cancelled_on_the_server(make_pool: PoolFactory) -> None:
    pool = await make_pool({"s": {**stdio_command("stdio-cancel")}})
    task = asyncio.create_task(pool.call("s__slow", {"seconds": 5, "steps": 50}))
    await eventually(lambda: pool.status()[0]["endpoints"][0]["in_flight"] == 1)
    await asyncio.sleep(0.3)
    task.cancel()
    try:
        await task
        raise AssertionError("the call should have been cancelled")
    except asyncio.CancelledError:
        pass
    await asyncio.sleep(0.2)
    stats = json.loads((await pool.call("s__stats", {})).content)
    assert stats["slow_started"] == 1
    assert stats["slow_cancelled"] == 1
    assert stats["slow_completed"] == 0


async def test_a_missing_command_leaves_the_server_down_without_failing_start(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(
        {"ghost": {"transport": "stdio", "command": "/nonexistent/mcp-ghost", **FAST}},
        ready=False,
    )
    await eventually(lambda: pool.status()[0]["endpoints"][0]["last_error"] is not None)
    assert pool.status()[0]["status"] == "down"
    assert "No such file" in pool.status()[0]["endpoints"][0]["last_error"]
    outcome = await pool.call("ghost__anything", {})
    assert outcome.status == "error"


@pytest.mark.slow
async def test_garbage_on_stdout_and_a_crashing_server(make_pool: PoolFactory) -> None:
    pool = await make_pool({"s": {**stdio_command("stdio-garbage")}})
    replica = pool.groups["s"].replicas[0]
    noisy = await pool.call("s__noise", {})
    assert (noisy.status, noisy.content) == ("ok", "made some noise")  # the junk line is skipped
    # a reply the server cannot even encode kills it mid-call: an error result, then a reconnect
    crashed = await pool.call("s__garbage", {})
    assert crashed.status == "error"
    assert "may or may not have run" in crashed.content
    assert (await pool.call("s__echo", {"text": "fine"})).content == "fine"
    assert replica.reconnects == 1
