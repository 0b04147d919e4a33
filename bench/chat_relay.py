"""Relay and capacity benchmark: the same fake upstream streamed directly and through the app.

Direct and through-app rounds alternate in one run. Every token carries the upstream's send
time. The app runs on one core, the fake upstream and this load generator on the other
(when the machine has two or more cores). The whole set of scenarios is repeated
(`--repeats`, default 3) on a fresh app each time; medians and every run go to
`bench/results/capacity.json` (`capacity_pg.json` on PostgreSQL, `capacity_quick.json`).

    uv run python bench/chat_relay.py                          # all scenarios, 3 repeats
    uv run python bench/chat_relay.py --scenarios ttft,burst   # a subset
    uv run python bench/chat_relay.py --quick                  # smoke run (< 1 minute)
    uv run python bench/chat_relay.py --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

Scenarios: ttft, paced, burst, ramp, idle, workers (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import profile
from bench.common import (
    ROOT,
    free_port,
    fresh_postgres_database,
    git_commit,
    raise_nofile,
    start_app,
    summary,
    write_result,
)

SCENARIOS = ("ttft", "paced", "burst", "ramp", "idle", "workers")
MAX_LOAD = 1.5
# the app route the streams go through: Vektor's own, or the OpenAI-compatible one (--route v1)
APP_ROUTES: dict[str, tuple[str, bytes]] = {
    "chat": ("/chat/stream", b'{"message":"go","model":"bench-upstream","tools":false}'),
    "v1": (
        "/v1/chat/completions",
        b'{"model":"bench-upstream","stream":true,"messages":[{"role":"user","content":"go"}]}',
    ),
}
app_route = "chat"
MARK = b"~"  # every token's content starts with it; nothing else in either stream has one
# the app's limits, set through its environment: nothing here may be refused or rate-limited
APP_ENV = {
    "RATE_LIMIT_CHAT": "1000000/minute",
    "RATE_LIMIT_API_KEY": "1000000/minute",
    "RATE_LIMIT_LOGIN_IP": "1000000/minute",
    "RATE_LIMIT_LOGIN_ACCOUNT": "1000000/minute",
    "RATE_LIMIT_REGISTER": "1000000/minute",
    "MAX_CONCURRENT_GENERATIONS": "10000",
    "GENERATION_RETENTION_SECONDS": "5",
    "SHUTDOWN_GRACE_SECONDS": "2",  # stopping an app between runs takes no longer than that
}
GUARD_FILE = ROOT / "bench" / "guard.json"
REDIS_URL = "redis://127.0.0.1:6379/13"  # a database of its own; keys expire, never flushed
TARGETS = {
    "ttft_added_p50_ms": "≤ 2 (SQLite), ≤ 3 (PG)",
    "paced_gap_p99_ratio": "≤ 1.10",
    "paced_app_cpu_us_per_token": "≤ 50",
    "burst_ttft_p99_added_ms": "≤ 150",
    "burst_app_cpu_ms_per_start": "≤ 1.5",
    "ramp_ceiling_streams": "≥ 1000",
    "idle_kib_per_stream": "≤ 32",
    "workers_2_over_1": "≈ 2",
}


# -- one stream over a bare socket: the load generator's per-token work is one count --------


@dataclass
class Phase:
    """Shared by every stream of one phase: gaps are recorded only while `measuring`."""

    measuring: bool = False
    gaps: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    tokens_in_window: int = 0


class RawStream(asyncio.Protocol):
    """Sends one request with `Connection: close`, counts `~` markers in what comes back."""

    def __init__(self, request: bytes, phase: Phase, done: asyncio.Future[RawStream]) -> None:
        self.request, self.phase, self.done = request, phase, done
        self.status = 0
        self.started = 0.0
        self.ttft = -1.0
        self.last = 0.0
        self.tokens = 0
        self.reads = 0
        self.error: str | None = None
        self.transport: asyncio.Transport | None = None
        self.first_token: asyncio.Future[None] = done.get_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.status:
            self.status = int(data[9:12]) if data.startswith(b"HTTP/1.1 ") else -1
        n = data.count(MARK)
        if not n:
            return
        phase = self.phase
        if self.tokens == 0:
            self.ttft = now - self.started
            if not self.first_token.done():  # (cancelled if the harness gave up waiting)
                self.first_token.set_result(None)
        elif phase.measuring:
            phase.gaps.append(now - self.last)
            if n > 1:
                phase.gaps.extend([0.0] * (n - 1))
        if phase.measuring:
            phase.tokens_in_window += n
            self.reads += 1
            if self.reads % 16 == 1:  # a sample of per-token lag
                i = data.find(MARK)
                digits = data[i + 1 : i + 20]
                if len(digits) == 19 and digits.isdigit():
                    phase.lags.append((time.time_ns() - int(digits)) / 1e6)
        self.last = now
        self.tokens += n

    def connection_lost(self, exc: Exception | None) -> None:
        if self.error is not None:
            pass
        elif self.status != 200:
            self.error = f"status {self.status}"
        elif self.tokens == 0:
            self.error = "no token"
        if not self.first_token.done():
            self.first_token.set_result(None)
        if not self.done.done():
            self.done.set_result(self)


@dataclass
class Target:
    """Where and what to POST for one stream."""

    port: int
    request: bytes

    @classmethod
    def direct(cls, port: int) -> Target:
        body = b'{"model":"bench","stream":true,"messages":[{"role":"user","content":"go"}]}'
        return cls(port, _post(port, "/v1/chat/completions", body, {}))

    @classmethod
    def app(cls, port: int, token: str) -> Target:
        path, body = APP_ROUTES[app_route]
        return cls(port, _post(port, path, body, {"Authorization": f"Bearer {token}"}))


def _post(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
    ).encode() + body


async def open_stream(target: Target, phase: Phase) -> tuple[RawStream, asyncio.Future[RawStream]]:
    """Connect and send; the future resolves when the server closes the connection."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[RawStream] = loop.create_future()
    stream = RawStream(target.request, phase, done)
    stream.started = time.perf_counter()
    try:
        await loop.create_connection(lambda: stream, "127.0.0.1", target.port)
    except OSError as exc:
        stream.error = f"connect: {exc}"
        stream.first_token.set_result(None)
        done.set_result(stream)
    return stream, done


async def open_many(target: Target, phase: Phase, n: int, spread_s: float) -> list[Any]:
    """Open `n` streams, their starts spread evenly over `spread_s` seconds."""
    t0 = time.perf_counter()
    opened = []
    for i in range(n):
        delay = t0 + spread_s * i / n - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        opened.append(await open_stream(target, phase))
    return opened


# -- shared plumbing -------------------------------------------------------------------------


@dataclass
class Ctx:
    """What every scenario needs."""

    upstream_port: int
    app_port: int
    token: str
    app_pids: list[int]
    quick: bool
    session: aiohttp.ClientSession
    deadline: float = float("inf")  # (monotonic) the ramp starts no step after it

    @property
    def upstream(self) -> str:
        return f"http://127.0.0.1:{self.upstream_port}"

    @property
    def app(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    def app_cpu(self) -> float:
        """User + system CPU seconds of the app's processes (gunicorn: master and workers)."""
        total = 0.0
        for pid in self.app_pids:
            try:
                procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in procs:
                try:
                    times = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += times.user + times.system
        return total

    def app_rss(self) -> int:
        return sum(psutil.Process(pid).memory_info().rss for pid in self.app_pids)


async def configure(ctx: Ctx, **values: Any) -> dict[str, Any]:
    async with ctx.session.post(f"{ctx.upstream}/config", json=values) as response:
        assert response.status == 200
        result: dict[str, Any] = await response.json()
        return result


def _ms(values: list[float]) -> list[float]:
    return [v * 1000 for v in values]


async def finish_all(ctx: Ctx, streams: list[Any], timeout: float = 30) -> list[RawStream]:
    """Stop the upstream's open streams and wait until every connection closed; one still
    open after `timeout` is closed here and counted as an error."""
    await configure(ctx, stop=True)
    _, pending = await asyncio.wait([f for _, f in streams], timeout=timeout)
    for stream, _ in streams:
        if not stream.done.done():
            stream.error = f"still open {timeout:g} s after the stop"
            if stream.transport is not None:
                stream.transport.abort()
    if pending:
        await asyncio.wait(pending, timeout=5)
    return [s for s, _ in streams]


# -- scenario: single-stream time to first token (aiohttp client, as before) --------------------


@dataclass
class StreamStats:
    """Timings of one stream, in milliseconds."""

    ttft: float = 0.0
    gaps: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    tokens: int = 0


async def _consume(response: aiohttp.ClientResponse, started: float) -> StreamStats:
    stats, last = StreamStats(), 0.0
    async for raw in response.content:
        i = raw.find(MARK)
        if i < 0:
            continue
        now = time.perf_counter()
        stats.lags.append((time.time_ns() - int(raw[i + 1 : i + 20])) / 1e6)
        if stats.tokens == 0:
            stats.ttft = (now - started) * 1000
        else:
            stats.gaps.append((now - last) * 1000)
        last = now
        stats.tokens += 1
    return stats


async def stream_direct(ctx: Ctx) -> StreamStats:
    """Stream straight from the fake upstream."""
    started = time.perf_counter()
    body = {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    async with ctx.session.post(f"{ctx.upstream}/v1/chat/completions", json=body) as response:
        return await _consume(response, started)


async def stream_app(ctx: Ctx) -> StreamStats:
    """Stream the same upstream through the app's route (POST /chat/stream, or --route v1)."""
    started = time.perf_counter()
    path, body = APP_ROUTES[app_route]
    headers = {"Authorization": f"Bearer {ctx.token}", "Content-Type": "application/json"}
    async with ctx.session.post(f"{ctx.app}{path}", data=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        return await _consume(response, started)


async def scenario_ttft(ctx: Ctx) -> dict[str, Any]:
    """One stream at a time, instant and 50 ms upstream; 100 alternating pairs each."""
    result: dict[str, Any] = {}
    for label, ttft_ms in (
        ("ttft_single_stream_ms", 0),
        ("ttft_single_stream_50ms_upstream", 50),
    ):
        await configure(ctx, tokens=20, rate=0, ttft_ms=ttft_ms, pause_after=0)
        for _ in range(5):  # warm-up (connection pools, statement caches); not recorded
            await stream_direct(ctx)
            await stream_app(ctx)
        direct, through = [], []
        for _ in range(10 if ctx.quick else 100):
            direct.append((await stream_direct(ctx)).ttft)
            through.append((await stream_app(ctx)).ttft)
        d, a = summary(direct), summary(through)
        result[label] = {
            "direct": d,
            "app": a,
            "added_p50": round(a["p50"] - d["p50"], 3),
            "added_p99": round(a["p99"] - d["p99"], 3),
        }
    return result


# -- scenario: paced streams (100 x 50 tok/s) ---------------------------------------------------


async def _paced_round(ctx: Ctx, target: Target, n: int, tokens: int) -> tuple[Phase, int, int]:
    phase = Phase(measuring=True)
    streams = await open_many(target, phase, n, 0)
    done = await asyncio.wait_for(asyncio.gather(*(f for _, f in streams)), 120)
    errors = sum(1 for s in done if s.error or s.tokens != tokens)
    return phase, sum(s.tokens for s in done), errors


async def scenario_paced(ctx: Ctx) -> dict[str, Any]:
    """Unpaced CPU per token (as before), then n streams x 50 tok/s, direct and app rounds
    alternating: gaps, lag, and the app's CPU per relayed token at that rate."""
    result: dict[str, Any] = {}
    tokens, streams = (500, 4) if ctx.quick else (2000, 10)
    await configure(ctx, tokens=tokens, rate=0, ttft_ms=0, pause_after=0)
    before = ctx.app_cpu()
    relayed = await asyncio.gather(*(stream_app(ctx) for _ in range(streams)))
    cpu_s = ctx.app_cpu() - before
    count = sum(s.tokens for s in relayed)
    result["cpu_per_token_us"] = {
        "tokens": count,
        "streams": streams,
        "app_cpu_s": round(cpu_s, 3),
        "us_per_token": round(cpu_s / max(count, 1) * 1e6, 2),
    }

    n, per_stream, rounds = (30, 50, 1) if ctx.quick else (100, 100, 2)
    await configure(ctx, tokens=per_stream, rate=50, ttft_ms=0, pause_after=0)
    d_phases, a_phases, cpu, relayed_tokens, errors = [], [], 0.0, 0, 0
    for _ in range(rounds):
        phase, _, err = await _paced_round(ctx, Target.direct(ctx.upstream_port), n, per_stream)
        d_phases.append(phase)
        errors += err
        before = ctx.app_cpu()
        phase, got, err = await _paced_round(
            ctx, Target.app(ctx.app_port, ctx.token), n, per_stream
        )
        cpu += ctx.app_cpu() - before
        relayed_tokens += got
        errors += err
        a_phases.append(phase)
    d_gaps = _ms([g for p in d_phases for g in p.gaps])
    a_gaps = _ms([g for p in a_phases for g in p.gaps])
    d_lags = [x for p in d_phases for x in p.lags]
    a_lags = [x for p in a_phases for x in p.lags]
    result["concurrent_streams"] = {
        "streams": n,
        "tokens_per_s": 50,
        "rounds": rounds,
        "gap_ms": {"direct": summary(d_gaps), "app": summary(a_gaps)},
        "gap_p99_ratio": round(summary(a_gaps)["p99"] / max(summary(d_gaps)["p99"], 1e-9), 3),
        "lag_ms_sampled": {"direct": summary(d_lags), "app": summary(a_lags)},
        "app_cpu_s": round(cpu, 3),
        "app_tokens": relayed_tokens,
        "app_cpu_us_per_token": round(cpu / max(relayed_tokens, 1) * 1e6, 2),
        "errors": errors,
    }
    return result


# -- scenario: a burst of streams starting at once ----------------------------------------------


async def scenario_burst(ctx: Ctx, n: int) -> dict[str, Any]:
    """`n` one-token answers requested at once; direct and app bursts alternate."""
    rounds = 1 if ctx.quick else 3
    await configure(ctx, tokens=1, rate=0, ttft_ms=0, pause_after=0)
    direct_t, app_t = Target.direct(ctx.upstream_port), Target.app(ctx.app_port, ctx.token)

    async def burst(target: Target) -> list[RawStream]:
        streams = await asyncio.gather(*(open_stream(target, Phase()) for _ in range(n)))
        return list(await asyncio.wait_for(asyncio.gather(*(f for _, f in streams)), 120))

    await burst(direct_t)  # warm-up: connection pools sized for the burst
    await burst(app_t)
    d_ttft: list[float] = []
    a_ttft: list[float] = []
    cpu, errors = 0.0, 0
    for _ in range(rounds):
        done = await burst(direct_t)
        d_ttft += [s.ttft * 1000 for s in done if s.ttft >= 0]
        errors += sum(1 for s in done if s.error)
        before = ctx.app_cpu()
        done = await burst(app_t)
        cpu += ctx.app_cpu() - before
        a_ttft += [s.ttft * 1000 for s in done if s.ttft >= 0]
        errors += sum(1 for s in done if s.error)
    d, a = summary(d_ttft), summary(a_ttft)
    return {
        "streams": n,
        "rounds": rounds,
        "ttft_ms": {"direct": d, "app": a},
        "ttft_p99_added_ms": round(a["p99"] - d["p99"], 3),
        "app_cpu_ms_per_start": round(cpu / (n * rounds) * 1000, 3),
        "errors": errors,
    }


# -- scenario: ramp of paced streams (streams per core) -----------------------------------------


async def ramp_step(ctx: Ctx, target: Target, n: int, rate: float, hold: float) -> dict[str, Any]:
    """Hold `n` streams at `rate` tok/s: start them, wait until all answer, settle, then
    record gaps for `hold` seconds; stop them and wait until every connection closed."""
    await configure(ctx, tokens=1_000_000, rate=rate, ttft_ms=0, pause_after=0)
    phase = Phase()
    harness = psutil.Process()
    t_start = time.perf_counter()
    streams = await open_many(target, phase, n, spread_s=max(0.25, n / 1000))
    errors: list[str] = []
    _, pending = await asyncio.wait([s.first_token for s, _ in streams], timeout=30)
    if pending:
        errors.append(f"{len(pending)} streams did not answer within 30 s")
    started_s = time.perf_counter() - t_start
    await asyncio.sleep(0.5)
    app_before, gen_before = ctx.app_cpu(), sum(harness.cpu_times()[:2])
    busy_before = psutil.cpu_times(percpu=True)
    phase.measuring = True
    await asyncio.sleep(hold)
    phase.measuring = False
    app_cpu = ctx.app_cpu() - app_before
    gen_cpu = sum(harness.cpu_times()[:2]) - gen_before
    busy_after = psutil.cpu_times(percpu=True)
    done = await finish_all(ctx, streams)
    errors += [s.error for s in done if s.error]
    gaps = _ms(phase.gaps)
    expected = n * rate * hold
    return {
        "streams": n,
        "started_in_s": round(started_s, 2),
        "gap_ms": summary(gaps),
        "lag_ms_sampled": summary(phase.lags),
        "tokens_in_window": phase.tokens_in_window,
        "delivered_ratio": round(phase.tokens_in_window / expected, 3),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
        "app_cpu_cores": round(app_cpu / hold, 3),
        # steady state (no stream starting): the app's CPU per relayed token at this rate
        "app_cpu_us_per_token": round(app_cpu / max(phase.tokens_in_window, 1) * 1e6, 2),
        "loadgen_cpu_us_per_token": round(gen_cpu / max(phase.tokens_in_window, 1) * 1e6, 2),
        "core_busy": [
            round(1 - (a.idle - b.idle) / max(sum(a) - sum(b), 1e-9), 3)
            for a, b in zip(busy_after, busy_before, strict=True)
        ],
    }


def ramp_steps(quick: bool) -> list[int]:
    return [20, 60] if quick else [200, 300, 400, 600, 800, 1000, 1200, 1600]


async def run_ramp(
    ctx: Ctx,
    *,
    direct: bool,
    rate: float = 20,
    hold: float | None = None,
    budget_s: float = 100,
) -> dict[str, Any]:
    """Increasing steps until the app fails one (gap p99 > 2x direct's, or an error); the
    direct run of each step checks that the load generator keeps up (gap p99 ≤ 1.5 x
    the token interval, ≥ 95 % of the tokens delivered, no error)."""
    hold = hold if hold is not None else (1.5 if ctx.quick else 3.0)
    interval_ms = 1000 / rate
    steps, ceiling, loadgen_ok, over_budget = [], 0, True, False
    # its own budget, and the run's: the default full run stays within 10 minutes
    deadline = min(time.monotonic() + budget_s, ctx.deadline)
    for n in ramp_steps(ctx.quick):
        if time.monotonic() > deadline:
            over_budget = True
            break
        step: dict[str, Any] = {"streams": n}
        if direct:
            d = await ramp_step(ctx, Target.direct(ctx.upstream_port), n, rate, hold)
            d["ok"] = (
                d["errors"] == 0
                and d["gap_ms"]["p99"] <= 1.5 * interval_ms
                and d["delivered_ratio"] >= 0.95
            )
            loadgen_ok = loadgen_ok and bool(d["ok"])
            step["direct"] = d
            reference = d["gap_ms"]["p99"]
        else:
            reference = interval_ms  # no direct run: the nominal interval
        a = await ramp_step(ctx, Target.app(ctx.app_port, ctx.token), n, rate, hold)
        a["gap_p99_ratio"] = round(a["gap_ms"]["p99"] / max(reference, 1e-9), 3)
        a["ok"] = a["errors"] == 0 and a["gap_p99_ratio"] <= 2.0
        step["app"] = a
        steps.append(step)
        if not a["ok"]:
            break
        ceiling = n
    return {
        "tokens_per_s": rate,
        "hold_s": hold,
        "ceiling_streams": ceiling,
        "ceiling_is_last_step": ceiling == ramp_steps(ctx.quick)[-1],
        "stopped_by_time_budget": over_budget,
        "loadgen_kept_up": loadgen_ok if direct else None,
        "steps": steps,
    }


# -- scenario: idle streams ------------------------------------------------------------------


async def scenario_idle(ctx: Ctx) -> dict[str, Any]:
    """Streams held open mid-answer (one token, then the upstream waits): RSS delta / n.
    Measured once per app process, the first time it holds that many streams (a second
    round would reuse the memory the first one freed and show almost nothing)."""
    n = 50 if ctx.quick else 500
    await configure(ctx, tokens=1000, rate=20, ttft_ms=0, pause_after=1)
    target = Target.app(ctx.app_port, ctx.token)
    await asyncio.sleep(0.5)
    rss_before = ctx.app_rss()
    streams = await open_many(target, Phase(), n, spread_s=n / 1000)
    _, pending = await asyncio.wait([s.first_token for s, _ in streams], timeout=60)
    await asyncio.sleep(1.0)
    rss_during = ctx.app_rss()
    done = await finish_all(ctx, streams)
    await configure(ctx, pause_after=0)
    return {
        "streams": n,
        "rss_before_mib": round(rss_before / 2**20, 2),
        "rss_during_mib": round(rss_during / 2**20, 2),
        "kib_per_stream": round((rss_during - rss_before) / n / 1024, 2),
        "errors": sum(1 for s in done if s.error) + len(pending),
    }


# -- the app, the run, the repeats ---------------------------------------------------------------


@dataclass
class Setup:
    """The processes and files of one run."""

    work: Path
    upstream_port: int
    app_cores: set[int] | None
    gen_cores: set[int] | None
    database_url: str | None
    redis_url: str = REDIS_URL
    all_cores: set[int] = field(default_factory=lambda: os.sched_getaffinity(0))
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))


def write_config(config: Path, upstream: str) -> None:
    config.mkdir(parents=True, exist_ok=True)
    model = {
        "id": "bench-upstream",
        "provider": "openai",
        "model": "bench",
        "base_url": f"{upstream}/v1",
        "api_key_env": "BENCH_UPSTREAM_KEY",
        "timeout_s": 60,
    }
    models = {"default_model": "vektor-echo", "models": [{"id": "vektor-echo", "provider": "echo"}]}
    models["models"].append(model)  # type: ignore[attr-defined]
    (config / "model_configs.json").write_text(json.dumps(models))
    (config / "mcp_servers.json").write_text(json.dumps({"servers": {}}))


@contextmanager
def app_running(
    setup: Setup, *, label: str, args: list[str] | None = None, redis: bool = False
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A fresh app (fresh SQLite file, or the given PostgreSQL database) on its cores."""
    work = setup.work / label
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **APP_ENV,
        "BENCH_UPSTREAM_KEY": "bench-key",
        "SECRET_KEY": setup.secret,  # one key for every worker (tokens work on any of them)
    }
    env["REDIS_URL"] = setup.redis_url if redis else ""  # "" = unset: in-process state
    database_url = setup.database_url or f"sqlite+aiosqlite:///{work}/bench.db"
    if args:
        # several workers would each migrate a fresh database at start-up, and race (on
        # SQLite one fails with "table ... already exists" and gunicorn stops): migrate first
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from app.db.migrate import upgrade_head; upgrade_head(sys.argv[1])",
                database_url,
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    process = start_app(
        port=port,
        workdir=work,
        config_dir=setup.work / "config",
        extra_env=env,
        database_url=database_url,
        # gunicorn's workers: on every core (not the load generator's pinning they'd inherit)
        cpus=setup.app_cores if not args else setup.all_cores,
        args=args,
    )
    try:
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(ProcessLookupError):  # a gunicorn worker left behind
            os.killpg(process.pid, signal.SIGKILL)


async def login(session: aiohttp.ClientSession, app: str) -> str:
    account = {"email": "bench@example.com", "username": "bench", "password": "benchmark-pw"}
    async with session.post(f"{app}/auth/register", json=account) as r:
        assert r.status in (201, 409), await r.text()
    async with session.post(
        f"{app}/auth/login", json={"username": "bench", "password": "benchmark-pw"}
    ) as r:
        assert r.status == 200, await r.text()
        token = str((await r.json())["access_token"])
    if app_route != "v1":
        return token
    # the OpenAI-compatible route as its clients call it: with a personal API key
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(
        f"{app}/users/me/api-keys", json={"name": "bench"}, headers=headers
    ) as r:
        assert r.status == 201, await r.text()
        return str((await r.json())["key"])


async def _with_ctx(
    setup: Setup,
    port: int,
    pids: list[int],
    quick: bool,
    body: Callable[[Ctx], Any],
    deadline: float = float("inf"),
) -> Any:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        token = await login(session, f"http://127.0.0.1:{port}")
        ctx = Ctx(setup.upstream_port, port, token, pids, quick, session, deadline)
        return await body(ctx)


async def _warm(ctx: Ctx) -> None:
    await configure(ctx, tokens=5, rate=0, ttft_ms=0, pause_after=0)
    for _ in range(5):
        await stream_app(ctx)


def run_loop(coro: Any) -> Any:
    """Run on uvloop when it is installed (less load-generator CPU per token)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


@contextmanager
def _profiled(args: argparse.Namespace, scenario: str, pid: int) -> Iterator[None]:
    """py-spy on the app during one scenario of the first repeat (`--profile DIR`)."""
    if not args.profile or args.profiled_once.get(scenario):
        yield
        return
    args.profiled_once[scenario] = True
    directory = Path(args.profile)
    directory.mkdir(parents=True, exist_ok=True)
    raw = directory / f"{scenario}.raw"
    raw.unlink(missing_ok=True)
    with profile.recording(pid, raw):
        yield
    written = profile.write_summary(raw, title=f"{scenario} ({git_commit()})")
    if written:
        print(f"profile of {scenario}: {written}", flush=True)


WORKERS_RESERVE_S = 80  # of a repeat's time, kept for the workers scenario when selected


def run_once(
    setup: Setup, selected: list[str], args: argparse.Namespace, deadline: float
) -> dict[str, Any]:
    """One repeat: a fresh single-process app for the single-process scenarios, then (if
    selected) gunicorn with 1 and 2 workers."""
    result: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    result["scenario_seconds"] = seconds
    single = [s for s in selected if s != "workers"]
    if single:
        with app_running(setup, label=f"app-{time.monotonic_ns()}") as (port, process):

            async def body(ctx: Ctx) -> None:
                await _warm(ctx)
                for name in ("ttft", "idle", "paced", "burst", "ramp"):  # idle on a young heap
                    if name not in single:
                        continue
                    t0 = time.monotonic()
                    with _profiled(args, name, process.pid):
                        await _scenario(ctx, name)
                    seconds[name] = round(time.monotonic() - t0, 1)

            async def _scenario(ctx: Ctx, name: str) -> None:
                if name == "ttft":
                    result.update(await scenario_ttft(ctx))
                elif name == "idle":
                    result["idle"] = await scenario_idle(ctx)
                elif name == "paced":
                    result.update(await scenario_paced(ctx))
                elif name == "burst":
                    result["burst"] = await scenario_burst(ctx, args.burst)
                else:
                    result["ramp"] = await run_ramp(ctx, direct=True)

            reserve = WORKERS_RESERVE_S if "workers" in selected else 0
            run_loop(_with_ctx(setup, port, [process.pid], args.quick, body, deadline - reserve))
    if "workers" in selected:
        t0 = time.monotonic()
        workers: dict[str, Any] = {
            "note": "gunicorn (python main.py prod --workers N) with Redis, on all cores, "
            "sharing them with the fake upstream and the load generator (pinned to one core); "
            "gap p99 is compared with the nominal 50 ms interval, not a direct run",
            "redis_url": setup.redis_url,
        }
        for count in (1, 2):
            label = f"gunicorn{count}-{time.monotonic_ns()}"
            with app_running(
                setup, label=label, args=["prod", "--workers", str(count)], redis=True
            ) as (port, process):

                async def wbody(ctx: Ctx) -> dict[str, Any]:
                    await _warm(ctx)
                    hold = 1.5 if ctx.quick else 2.0
                    return await run_ramp(ctx, direct=False, hold=hold, budget_s=45)

                share = deadline - (WORKERS_RESERVE_S / 2 if count == 1 else 0)
                workers[f"workers_{count}"] = run_loop(
                    _with_ctx(setup, port, [process.pid], args.quick, wbody, share)
                )
        one = workers["workers_1"]["ceiling_streams"]
        two = workers["workers_2"]["ceiling_streams"]
        workers["ratio_2_over_1"] = round(two / one, 3) if one else None
        result["workers"] = workers
        seconds["workers"] = round(time.monotonic() - t0, 1)
    return result


def figures(run: dict[str, Any]) -> dict[str, float | None]:
    """The headline figures of one run (None where the scenario did not run)."""

    def get(*path: str) -> Any:
        node: Any = run
        for key in path:
            if isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            elif isinstance(node, dict) and key in node:
                node = node[key]
            else:
                return None
        return node

    return {
        "ttft_added_p50_ms": get("ttft_single_stream_ms", "added_p50"),
        "ttft_added_p99_ms": get("ttft_single_stream_ms", "added_p99"),
        "ttft_50ms_upstream_added_p50_ms": get("ttft_single_stream_50ms_upstream", "added_p50"),
        "unpaced_app_cpu_us_per_token": get("cpu_per_token_us", "us_per_token"),
        "paced_gap_p99_ratio": get("concurrent_streams", "gap_p99_ratio"),
        "paced_app_cpu_us_per_token": get("concurrent_streams", "app_cpu_us_per_token"),
        "burst_ttft_p99_added_ms": get("burst", "ttft_p99_added_ms"),
        "burst_app_cpu_ms_per_start": get("burst", "app_cpu_ms_per_start"),
        "ramp_ceiling_streams": get("ramp", "ceiling_streams"),
        # steady state, no starts, at the first step (200 streams x 20 tok/s; --quick: 20)
        "ramp_step1_app_cpu_us_per_token": get("ramp", "steps", "0", "app", "app_cpu_us_per_token"),
        "idle_kib_per_stream": get("idle", "kib_per_stream"),
        "workers_1_ceiling_streams": get("workers", "workers_1", "ceiling_streams"),
        "workers_2_ceiling_streams": get("workers", "workers_2", "ceiling_streams"),
        "workers_2_over_1": get("workers", "ratio_2_over_1"),
    }


class CpuWatch:
    """CPU the whole machine used beyond our own processes, in cores, over a window."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.busy0 = self._busy()
        self.ours0 = self._ours()
        self.steal0 = self._steal()

    @staticmethod
    def _busy() -> float:
        # processes' time only: interrupts and softirqs (much of it our own loopback
        # traffic) and the hypervisor's steal are not any process's; guest is in user
        t = psutil.cpu_times()
        return float(t.user + getattr(t, "nice", 0.0) + t.system)

    @staticmethod
    def _steal() -> float:
        return float(getattr(psutil.cpu_times(), "steal", 0.0))

    @staticmethod
    def _ours() -> float:
        me = psutil.Process()
        times = me.cpu_times()
        # children that have exited are in children_user/system once reaped
        total = float(times.user + times.system + times.children_user + times.children_system)
        for child in me.children(recursive=True):
            try:
                t = child.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def foreign_cores(self) -> float:
        wall = max(time.monotonic() - self.t0, 1e-9)
        return round(((self._busy() - self.busy0) - (self._ours() - self.ours0)) / wall, 3)

    def steal_cores(self) -> float:
        """CPU the hypervisor gave to other guests while we wanted it (a VM's noise)."""
        return round((self._steal() - self.steal0) / max(time.monotonic() - self.t0, 1e-9), 3)


def main() -> int:
    """Start the fake upstream, then repeat: start the app, run the scenarios, stop it."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smoke run: small and 1 repeat")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (--quick: 1)")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated: {','.join(SCENARIOS)}"
    )
    parser.add_argument("--burst", type=int, default=100, help="streams in the burst scenario")
    parser.add_argument("--allow-load", action="store_true", help="run even if load avg > 1.5")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=9.0,
        help="time budget: ramps start no new step past each repeat's share (default 9)",
    )
    parser.add_argument(
        "--route",
        choices=sorted(APP_ROUTES),
        default="chat",
        help="the app route: chat = POST /chat/stream (JWT), v1 = POST /v1/chat/completions "
        "(OpenAI wire format, API key)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin to cores")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record each scenario of the first repeat with py-spy; summaries in DIR",
    )
    parser.add_argument(
        "--guard",
        metavar="FILE",
        nargs="?",
        const=str(GUARD_FILE),
        help="exit 3 if a median is worse than its limit in FILE "
        f"(default {GUARD_FILE.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--output", help="result file (default bench/results/capacity[_quick][_pg].json)"
    )
    parser.add_argument(
        "--redis-url", default=REDIS_URL, help=f"Redis for the workers scenario ({REDIS_URL})"
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run the app on a fresh database on this PostgreSQL server "
        "(e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres) instead of SQLite",
    )
    args = parser.parse_args()
    global app_route
    app_route = args.route
    args.profiled_once = {}
    if args.guard and args.quick:
        parser.error("--guard checks a full run's medians (its limits mean nothing for --quick)")
    selected = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(selected) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    repeats = args.repeats or (1 if args.quick else 3)
    load = os.getloadavg()
    if load[0] > MAX_LOAD and not args.allow_load:
        print(
            f"load average {load[0]:.2f} > {MAX_LOAD}: the figures would be noise. Wait for a "
            "quiet machine, or pass --allow-load (the runs are then flagged in the result).",
            file=sys.stderr,
        )
        return 2
    nofile = raise_nofile()
    cores = sorted(os.sched_getaffinity(0))
    app_cores = gen_cores = None
    if len(cores) >= 2 and not args.no_pin:
        app_cores, gen_cores = {cores[-1]}, {cores[0]}
        os.sched_setaffinity(0, gen_cores)  # this process and the fake upstream it starts

    work = Path(tempfile.mkdtemp(prefix="vektor-bench-"))
    up_port = free_port()
    write_config(work / "config", f"http://127.0.0.1:{up_port}")
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fake_upstream.py"), "--port", str(up_port)]
    )
    database_url, drop_database = None, None
    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    # each repeat's ramps start no step after its share of --max-minutes
    per_repeat = args.max_minutes * 60 / repeats
    try:
        wait_port(up_port)
        for repeat in range(repeats):
            if args.postgres:
                database_url, drop_database = fresh_postgres_database(args.postgres)
            setup = Setup(
                work, up_port, app_cores, gen_cores, database_url, args.redis_url, set(cores)
            )
            load_before, watch, t0 = os.getloadavg(), CpuWatch(), time.monotonic()
            try:
                result = run_once(setup, selected, args, started + per_repeat * (repeat + 1))
            finally:
                if drop_database is not None:
                    drop_database()
                    drop_database = None
            foreign, steal = watch.foreign_cores(), watch.steal_cores()
            load_after = os.getloadavg()
            runs.append(
                {
                    "repeat": repeat + 1,
                    "seconds": round(time.monotonic() - t0, 1),
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in load_after],
                    "other_processes_cpu_cores": foreign,
                    "steal_cores": steal,
                    # our own run raises the load average; others' CPU use says more
                    "under_load": load_before[0] > MAX_LOAD or foreign > 0.3,
                    "figures": figures(result),
                    **result,
                }
            )
            print(f"repeat {repeat + 1}/{repeats} done in {runs[-1]['seconds']} s", flush=True)
    finally:
        fake.terminate()
        fake.wait(timeout=30)

    medians: dict[str, Any] = {}
    for key in runs[0]["figures"]:
        values = [r["figures"][key] for r in runs if r["figures"][key] is not None]
        if values:
            medians[key] = {
                "runs": values,
                "median": round(statistics.median(values), 3),
                "target": TARGETS.get(key, ""),
            }
    command = "uv run python bench/chat_relay.py " + " ".join(sys.argv[1:])
    data: dict[str, Any] = {
        "command": command.strip(),
        "git_commit": git_commit(),
        "database": "postgresql" if args.postgres else "sqlite",
        "route": APP_ROUTES[args.route][0],
        "seconds": round(time.monotonic() - started, 1),
        "machine": {
            "cores": os.cpu_count(),
            "cpu": _cpu_model(),
            "python": platform.python_version(),
            "loadavg_at_start": [round(x, 2) for x in load],
            "nofile_limit": nofile,
        },
        "pinning": {
            "app_cores": sorted(app_cores) if app_cores else "all",
            "upstream_and_load_generator_cores": sorted(gen_cores) if gen_cores else "all",
            "gunicorn_cores": cores,
        },
        "app_env": APP_ENV,
        "scenarios": selected,
        "repeats": repeats,
        "any_run_under_load": any(r["under_load"] for r in runs),
        "medians": medians,
        "runs": runs,
        "profile_dir": args.profile,
    }
    # the former top-level keys (one run's values), for readers of the earlier result shape
    for key in ("ttft_single_stream_ms", "ttft_single_stream_50ms_upstream"):
        if key in runs[0]:
            data[key] = runs[0][key]
    for key in ("cpu_per_token_us", "concurrent_streams"):
        if key in runs[0]:
            data[key] = runs[0][key]
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))
    else:
        name = "capacity" + ("_v1" if args.route == "v1" else "")
        name += ("_quick" if args.quick else "") + ("_pg" if args.postgres else "")
        path = write_result(name, data)
    print_table(data)
    print(f"written to {path}")
    if args.guard:
        limits = json.loads(Path(args.guard).read_text())[data["database"]]
        breaches = guard_breaches(medians, limits)
        for line in breaches:
            print(f"GUARD: {line}", file=sys.stderr)
        if breaches:
            return 3
        print(f"guard: every measured figure within {args.guard}")
    return 0


def guard_breaches(medians: dict[str, Any], limits: dict[str, dict[str, float]]) -> list[str]:
    """Each figure whose median is past its limit (`max` or `min`), as a readable line; a
    limited figure the run did not measure is not a breach (select fewer scenarios freely)."""
    breaches = []
    for key, limit in limits.items():
        if key not in medians:
            continue
        value = medians[key]["median"]
        if "max" in limit and value > limit["max"]:
            breaches.append(f"{key}: median {value} > limit {limit['max']}")
        if "min" in limit and value < limit["min"]:
            breaches.append(f"{key}: median {value} < limit {limit['min']}")
    return breaches


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_table(data: dict[str, Any]) -> None:
    """metric | run values | median | target."""
    rows = [("metric", "runs", "median", "target")]
    for key, m in data["medians"].items():
        rows.append((key, " / ".join(f"{v:g}" for v in m["runs"]), f"{m['median']:g}", m["target"]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    loads = ", ".join(
        f"run {r['repeat']}: load {r['loadavg_before'][0]}→{r['loadavg_after'][0]}, "
        f"others {r['other_processes_cpu_cores']} cores{' (UNDER LOAD)' if r['under_load'] else ''}"
        for r in data["runs"]
    )
    print(loads)
    behind = [
        r["repeat"] for r in data["runs"] if (r.get("ramp") or {}).get("loadgen_kept_up") is False
    ]
    if behind:
        print(f"WARNING: the load generator did not keep up in the direct ramp of run(s) {behind}")
    pin = data["pinning"]
    print(
        f"app on cores {pin['app_cores']}, fake upstream + load generator on "
        f"{pin['upstream_and_load_generator_cores']}, gunicorn on {pin['gunicorn_cores']}; "
        f"commit {data['git_commit']}, {data['database']}, {data['seconds']} s"
    )


def wait_port(port: int) -> None:
    """Wait until a port on 127.0.0.1 accepts connections."""
    import socket

    for _ in range(200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("fake upstream did not start")


if __name__ == "__main__":
    raise SystemExit(main())
