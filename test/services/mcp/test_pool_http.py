"""The pool against two real streamable-HTTP replicas: balancing, failover, hangs, rejoining."""

from __future__ import annotations

import asyncio
import collections
import json

import pytest

from test.services.mcp.conftest import FAST, PoolFactory, ServerProcess, endpoint
from test.support.net import free_port
from test.support.waiting import eventually


def http_server(replicas: list[ServerProcess], **overrides: object) -> dict[str, object]:
    """A `search`-like server over both replicas."""
    return {
        "transport": "streamable_http",
        "endpoints": [r.url for r in replicas],
        "idempotent_tools": ["echo", "whoami", "slow"],
        **FAST,
        **overrides,
    }


async def whoami_counts(pool, n: int) -> collections.Counter[str]:
    """Who answered `n` sequential whoami calls."""
    counts: collections.Counter[str] = collections.Counter()
    for _ in range(n):
        outcome = await pool.call("t__whoami", {})
        assert outcome.status == "ok", outcome.content
        counts[outcome.content] += 1
    return counts


async def test_round_robin_spreads_calls_evenly(healthy_replicas, make_pool: PoolFactory) -> None:
    pool = await make_pool({"t": http_server(healthy_replicas)})
    await eventually(lambda: pool.status()[0]["status"] == "healthy")
    assert await whoami_counts(pool, 10) == {"A": 5, "B": 5}


async def test_failover_strategy_prefers_the_first_replica(
    healthy_replicas, make_pool: PoolFactory
) -> None:
    a, _b = healthy_replicas
    pool = await make_pool({"t": http_server(healthy_replicas, strategy="failover")})
    await eventually(lambda: pool.status()[0]["status"] == "healthy")
    assert await whoami_counts(pool, 4) == {"A": 4}
    a.kill()
    assert await whoami_counts(pool, 4) == {"B": 4}
    a.start()
    await eventually(lambda: endpoint(pool, "t", a.url)["healthy"])
    assert await whoami_counts(pool, 3) == {"A": 3}


async def test_least_busy_avoids_the_replica_with_a_running_call(
    healthy_replicas, make_pool: PoolFactory
) -> None:
    pool = await make_pool({"t": http_server(healthy_replicas, strategy="least_busy")})
    await eventually(lambda: pool.status()[0]["status"] == "healthy")
    long_call = asyncio.create_task(pool.call("t__slow", {"seconds": 1.5, "steps": 3}))
    await eventually(lambda: any(e["in_flight"] for e in pool.status()[0]["endpoints"]))
    busy = next(e for e in pool.status()[0]["endpoints"] if e["in_flight"])["target"]
    idle = next(r.name for r in healthy_replicas if r.url != busy)
    assert await whoami_counts(pool, 6) == {idle: 6}
    assert (await long_call).status == "ok"


async def test_killed_replica_fails_over_without_errors_and_rejoins(
    healthy_replicas, make_pool: PoolFactory
) -> None:
    a, _b = healthy_replicas
    pool = await make_pool({"t": http_server(healthy_replicas)})
    await eventually(lambda: pool.status()[0]["status"] == "healthy")
    outcomes = []

    async def worker(n: int) -> None:
        for i in range(n):
            outcomes.append(await pool.call("t__echo", {"text": f"hello {i}"}))

    workers = [asyncio.create_task(worker(40)) for _ in range(4)]
    await asyncio.sleep(0.2)
    a.kill()  # mid-run: some calls are on the wire to A right now
    await asyncio.gather(*workers)
    assert len(outcomes) == 160
    assert [o.content for o in outcomes if o.status != "ok"] == []

    # a tool that is not idempotent fails over too when the request provably never left
    for i in range(5):
        outcome = await pool.call("t__add", {"a": i, "b": 1})
        assert (outcome.status, outcome.content) == ("ok", str(float(i + 1)))
    assert pool.status()[0]["status"] == "degraded"
    assert pool.metrics_snapshot()["t"]["failovers"] >= 1
    assert pool.health()["status"] == "ok"  # degraded server, not down

    a.start()
    await eventually(lambda: endpoint(pool, "t", a.url)["healthy"])
    assert set(await whoami_counts(pool, 6)) == {"A", "B"}


async def test_hung_replica_times_out_then_fails_over_for_idempotent_tools_only(
    healthy_replicas, make_pool: PoolFactory
) -> None:
    a, _b = healthy_replicas
    pool = await make_pool(
        {
            "t": http_server(
                healthy_replicas, strategy="failover", health_interval_s=30, breaker_reset_s=0.3
            )
        }
    )
    await eventually(lambda: pool.status()[0]["status"] == "healthy")
    a.pause()
    try:
        idempotent = await pool.call("t__whoami", {}, timeout_s=1)
        assert (idempotent.status, idempotent.content) == ("ok", "B")
        assert idempotent.duration_ms >= 1000  # it waited for A's timeout first
        # the breaker opened (2 failures) or not yet: either way a non-idempotent call on A
        # must not be repeated elsewhere after its timeout
        pool.groups["t"].replicas[0].breaker.record_success()
        other = await pool.call("t__add", {"a": 1, "b": 2}, timeout_s=1)
        assert other.status == "error"
        assert "timed out after 1s" in other.content
    finally:
        a.resume()
    # once A answers again, the half-open trial succeeds and failover prefers it again
    for _ in range(50):
        if (await pool.call("t__whoami", {}, timeout_s=2)).content == "A":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("A never came back")
    assert endpoint(pool, "t", a.url)["healthy"]


async def test_progress_errors_and_odd_results(healthy_replicas, make_pool: PoolFactory) -> None:
    pool = await make_pool({"t": http_server(healthy_replicas, max_result_bytes=1000)})
    seen = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, total, message))

    outcome = await pool.call("t__slow", {"seconds": 0.2, "steps": 3}, on_progress=progress)
    assert outcome.status == "ok" and "slept" in outcome.content
    assert seen == [(0, 3, "step 1 of 3"), (1, 3, "step 2 of 3"), (2, 3, "step 3 of 3")]

    failed = await pool.call("t__fail", {"message": "no such index"})
    assert failed.status == "error" and "no such index" in failed.content

    crashed = await pool.call("t__crash", {})
    assert crashed.status == "error" and "crash" in crashed.content

    garbage = await pool.call("t__garbage", {})
    assert garbage.status == "error"
    assert "invalid response" in garbage.content

    mixed = await pool.call("t__mixed", {})
    assert mixed.status == "ok"
    assert "bell nul end" in mixed.content  # control characters dropped
    assert "[image: image/png, 12 bytes]" in mixed.content
    assert "[resource <file:///tmp/x.txt>]\ninner text" in mixed.content

    big = await pool.call("t__big", {"size": 5000})
    assert big.status == "ok"
    assert big.content.startswith("x" * 1000)
    assert "[truncated: the result was 5000 bytes; showing the first 1000]" in big.content

    bad_args = await pool.call("t__add", {"a": "one"})
    assert bad_args.status == "error"
    unknown = await pool.call("t__nope", {})
    assert (unknown.status, unknown.content) == ("error", "Unknown tool: t__nope")
    # the replicas are still fine after all that
    assert (await pool.call("t__echo", {"text": "still here"})).content == "still here"


async def test_cancelling_a_call_cancels_it_on_the_server(
    healthy_replicas, make_pool: PoolFactory
) -> None:
    pool = await make_pool({"t": http_server(healthy_replicas[:1])})
    task = asyncio.create_task(pool.call("t__slow", {"seconds": 5, "steps": 50}))
    await eventually(lambda: pool.status()[0]["endpoints"][0]["in_flight"] == 1)
    await asyncio.sleep(0.3)
    task.cancel()
    try:
        await task
        raise AssertionError("the call should have been cancelled")
    except asyncio.CancelledError:
        pass
    assert pool.status()[0]["endpoints"][0]["in_flight"] == 0

    async def server_saw_cancel() -> bool:
        stats = json.loads((await pool.call("t__stats", {})).content)
        return stats["slow_cancelled"] >= 1

    for _ in range(40):
        if await server_saw_cancel():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the server never saw the cancellation")


async def test_server_down_at_start_does_not_block_and_joins_later(
    make_pool: PoolFactory,
) -> None:
    late = ServerProcess("late")
    pool = await make_pool({"late": http_server([late])}, ready=False)
    try:
        await asyncio.sleep(0.3)
        assert pool.status()[0]["status"] == "down"
        assert pool.health()["status"] == "degraded"
        assert pool.tools() == []
        outcome = await pool.call("late__echo", {"text": "x"})
        assert outcome.status == "error"
        late.start()
        await eventually(lambda: pool.status()[0]["status"] == "healthy", timeout_s=15)
        assert (await pool.call("late__echo", {"text": "x"})).content == "x"
        # while it is down again, its tools stay listed as unavailable
        late.kill()
        await pool.call("late__echo", {"text": "x"})
        await eventually(lambda: pool.status()[0]["status"] == "down")
        listed = pool.tools(include_unavailable=True)
        assert "late__echo" in {t.qualified_name for t in listed}
        assert not any(t.available for t in listed)
        assert pool.tools() == []
        assert "unavailable" in (await pool.call("late__echo", {"text": "x"})).content
    finally:
        late.kill()


async def test_list_changed_refreshes_the_catalog(healthy_replicas, make_pool: PoolFactory) -> None:
    pool = await make_pool({"t": http_server(healthy_replicas[:1], health_interval_s=60)})
    name = f"dyn_{free_port()}"
    assert (await pool.call("t__add_tool", {"tool_name": name})).status == "ok"
    await eventually(lambda: pool.resolve(f"t__{name}") is not None, timeout_s=5)
    assert (await pool.call(f"t__{name}", {})).content == f"I am {name}"


async def test_reconnect_and_allow_deny_lists(healthy_replicas, make_pool: PoolFactory) -> None:
    pool = await make_pool(
        {
            "t": http_server(
                healthy_replicas[:1], allow_tools=["echo", "add", "fail"], deny_tools=["fail"]
            )
        }
    )
    assert {t.name for t in pool.tools()} == {"echo", "add"}
    denied = await pool.call("t__fail", {})
    assert (denied.status, denied.content) == ("error", "Unknown tool: t__fail")
    replica = pool.groups["t"].replicas[0]
    generation = replica.generation
    assert await pool.reconnect("t") is True
    assert await pool.reconnect("nope") is False
    await eventually(lambda: replica.generation > generation and replica.connected)
    assert (await pool.call("t__echo", {"text": "back"})).content == "back"


@pytest.mark.slow
async def test_legacy_sessions_survive_a_replica_restart(
    healthy_replicas, make_pool: PoolFactory
) -> None:
    a, _b = healthy_replicas
    pool = await make_pool({"t": http_server(healthy_replicas, protocol="legacy")})
    await eventually(lambda: pool.status()[0]["status"] == "healthy")
    assert set(await whoami_counts(pool, 4)) == {"A", "B"}
    a.kill()
    a.start()  # same port, new process: A's old session id means nothing to it
    outcomes = [await pool.call("t__add", {"a": i, "b": 0}) for i in range(6)]
    assert [o.status for o in outcomes] == ["ok"] * 6
    await eventually(lambda: pool.status()[0]["status"] == "healthy")
    assert set(await whoami_counts(pool, 4)) == {"A", "B"}
