"""The database health probe: bounded, one probe at a time, safe under concurrent callers."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.exc import OperationalError

from app.db.health import HEALTH_WAIT_S, DatabaseHealth


async def _nothing() -> None:
    return None


def _health(probe):  # type: ignore[no-untyped-def]
    health = DatabaseHealth(timeout_s=1)
    health.attach(probe=probe, watch_probe=probe, close=_nothing)
    return health


async def test_concurrent_health_checks_all_get_an_answer() -> None:
    # /health from two load balancers at once: a caller whose probe finished must read that
    # probe's result, not the next caller's probe that has just started
    probes = 0

    async def probe() -> None:
        nonlocal probes
        probes += 1
        await asyncio.sleep(0)

    health = _health(probe)

    async def caller() -> None:
        for _ in range(50):
            assert (await health.check())["status"] == "ok"
            await asyncio.sleep(0)

    await asyncio.gather(*(caller() for _ in range(10)))
    assert 1 < probes < 500  # probes are shared by callers that overlap
    await health.aclose()


async def test_a_caller_reads_its_own_probe_when_the_next_one_has_started() -> None:
    # the exact interleaving of two /health calls that made one of them a 500: A's probe
    # finishes, B starts the next probe before A resumes; A must answer from its own probe
    go = asyncio.Event()

    async def probe() -> None:
        await go.wait()

    health = _health(probe)
    first = asyncio.create_task(health.check())
    await asyncio.sleep(0)  # A starts its probe, which waits
    await asyncio.sleep(0)
    go.set()
    await asyncio.sleep(0)  # A's probe finishes; A resumes only a moment later
    second = asyncio.create_task(health.check())  # B: starts the next probe
    assert (await first)["status"] == "ok"
    assert (await second)["status"] == "ok"
    await health.aclose()


async def test_a_hanging_database_is_reported_within_the_bound() -> None:
    started = asyncio.Event()

    async def frozen() -> None:
        started.set()
        await asyncio.sleep(3600)

    health = _health(frozen)
    began = time.monotonic()
    results = await asyncio.gather(*(health.check() for _ in range(5)))
    assert time.monotonic() - began < HEALTH_WAIT_S + 0.4
    assert all(r == {"status": "error", "error": "timeout"} for r in results)
    await health.aclose()


async def test_an_outage_is_logged_once_and_ends_when_the_watch_probe_answers() -> None:
    answer = asyncio.Event()

    async def watch() -> None:
        if not answer.is_set():
            raise OSError("refused")

    health = DatabaseHealth(timeout_s=1)
    health.attach(probe=watch, watch_probe=watch, close=_nothing)
    recovered: list[bool] = []
    health.on_recovered(lambda: recovered.append(True))
    error = OperationalError("SELECT 1", None, Exception("connection refused"))
    health.failed(error)
    health.failed(error)
    assert health.down
    assert await health.check() == {"status": "error", "error": "unavailable"}  # at once
    answer.set()
    for _ in range(100):
        if not health.down:
            break
        await asyncio.sleep(0.05)
    assert not health.down and recovered == [True]
    await health.aclose()
