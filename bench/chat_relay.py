"""Relay benchmark: the same fake upstream streamed directly and through the app.

Rounds alternate direct / through-app in one run. Each token carries the upstream's send
time, so we record time to first token, every inter-token gap and per-token lag.

    uv run python bench/chat_relay.py            # writes bench/results/chat_relay.json
    uv run python bench/chat_relay.py --quick    # smaller run (smoke)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (
    ROOT,
    free_port,
    fresh_postgres_database,
    start_app,
    summary,
    write_result,
)


@dataclass
class StreamStats:
    """Timings of one stream, in milliseconds."""

    ttft: float = 0.0
    gaps: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    tokens: int = 0


async def _consume(response: aiohttp.ClientResponse, started: float, sse_app: bool) -> StreamStats:
    stats, last = StreamStats(), 0.0
    async for raw in response.content:
        line = raw.rstrip(b"\r\n")
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        payload = json.loads(line[6:])
        if sse_app:
            content = payload.get("content")
        else:
            choices = payload.get("choices") or [{}]
            content = choices[0].get("delta", {}).get("content")
        if not content:
            continue
        now = time.perf_counter()
        sent_ns = int(content.split()[0])
        stats.lags.append((time.time_ns() - sent_ns) / 1e6)
        if stats.tokens == 0:
            stats.ttft = (now - started) * 1000
        else:
            stats.gaps.append((now - last) * 1000)
        last = now
        stats.tokens += 1
    return stats


async def stream_direct(session: aiohttp.ClientSession, upstream: str) -> StreamStats:
    """Stream straight from the fake upstream."""
    started = time.perf_counter()
    body = {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    async with session.post(f"{upstream}/v1/chat/completions", json=body) as response:
        return await _consume(response, started, sse_app=False)


async def stream_app(session: aiohttp.ClientSession, app: str, token: str) -> StreamStats:
    """Stream the same upstream through POST /chat/stream."""
    started = time.perf_counter()
    body = {"message": "go", "model": "bench-upstream", "tools": False}
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(f"{app}/chat/stream", json=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        return await _consume(response, started, sse_app=True)


async def _configure(session: aiohttp.ClientSession, upstream: str, **values: float) -> None:
    async with session.post(f"{upstream}/config", json=values) as response:
        assert response.status == 200


async def _round(coros: list[Any]) -> list[StreamStats]:
    return list(await asyncio.gather(*coros))


def _flatten(rounds: list[list[StreamStats]], attr: str) -> list[float]:
    out: list[float] = []
    for streams in rounds:
        for s in streams:
            value = getattr(s, attr)
            out.extend(value if isinstance(value, list) else [value])
    return out


async def run(upstream: str, app: str, app_pid: int, quick: bool) -> dict[str, Any]:
    """All three scenarios; returns the JSON result."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async with session.post(
            f"{app}/auth/register",
            json={"email": "bench@example.com", "username": "bench", "password": "benchmark-pw"},
        ) as r:
            assert r.status in (201, 409)
        async with session.post(
            f"{app}/auth/login", json={"username": "bench", "password": "benchmark-pw"}
        ) as r:
            token = (await r.json())["access_token"]
        proc = psutil.Process(app_pid)
        result: dict[str, Any] = {}

        # 1. time to first token, one stream at a time: an instant upstream (worst case:
        #    nothing hides the app's own work) and one with a 50 ms time to first token
        #    (the user message is then saved while the upstream is still thinking)
        for label, ttft_ms in (
            ("ttft_single_stream_ms", 0),
            ("ttft_single_stream_50ms_upstream", 50),
        ):
            await _configure(session, upstream, tokens=20, rate=0, ttft_ms=ttft_ms)
            for _ in range(5):  # warm-up (connection pools, statement caches); not recorded
                await stream_direct(session, upstream)
                await stream_app(session, app, token)
            direct, through = [], []
            for _ in range(10 if quick else 100):
                direct.append(await stream_direct(session, upstream))
                through.append(await stream_app(session, app, token))
            d_ttft = [s.ttft for s in direct]
            a_ttft = [s.ttft for s in through]
            result[label] = {
                "direct": summary(d_ttft),
                "app": summary(a_ttft),
                "added_p50": round(summary(a_ttft)["p50"] - summary(d_ttft)["p50"], 3),
                "added_p99": round(summary(a_ttft)["p99"] - summary(d_ttft)["p99"], 3),
            }

        # 2. CPU per relayed token (persistence on: SQLite, 2 writes per turn)
        tokens, streams = (500, 4) if quick else (2000, 10)
        await _configure(session, upstream, tokens=tokens, rate=0, ttft_ms=0)
        before = proc.cpu_times()
        relayed = await _round([stream_app(session, app, token) for _ in range(streams)])
        after = proc.cpu_times()
        cpu_s = (after.user - before.user) + (after.system - before.system)
        count = sum(s.tokens for s in relayed)
        result["cpu_per_token_us"] = {
            "tokens": count,
            "streams": streams,
            "app_cpu_s": round(cpu_s, 3),
            "us_per_token": round(cpu_s / max(count, 1) * 1e6, 2),
        }

        # 3. 100 concurrent streams at 50 tokens/s: gap p99 through the app vs direct
        n, per_stream = (30, 50) if quick else (100, 100)
        await _configure(session, upstream, tokens=per_stream, rate=50, ttft_ms=0)
        d_rounds, a_rounds = [], []
        for _ in range(2 if quick else 3):
            d_rounds.append(await _round([stream_direct(session, upstream) for _ in range(n)]))
            a_rounds.append(await _round([stream_app(session, app, token) for _ in range(n)]))
        d_gaps, a_gaps = _flatten(d_rounds, "gaps"), _flatten(a_rounds, "gaps")
        d_lags, a_lags = _flatten(d_rounds, "lags"), _flatten(a_rounds, "lags")
        result["concurrent_streams"] = {
            "streams": n,
            "tokens_per_s": 50,
            "gap_ms": {"direct": summary(d_gaps), "app": summary(a_gaps)},
            "gap_p99_ratio": round(summary(a_gaps)["p99"] / max(summary(d_gaps)["p99"], 1e-9), 3),
            "lag_ms": {"direct": summary(d_lags), "app": summary(a_lags)},
            "tokens_received": {"direct": len(d_lags), "app": len(a_lags)},
        }
        return result


def main() -> None:
    """Start the fake upstream and the app, run, and write the result."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run the app on a fresh database on this PostgreSQL server "
        "(e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres) instead of SQLite",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vektor-bench-"))
    config = work / "config"
    config.mkdir()
    up_port, app_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    (config / "model_configs.json").write_text(
        json.dumps(
            {
                "default_model": "vektor-echo",
                "models": [
                    {"id": "vektor-echo", "provider": "echo"},
                    {
                        "id": "bench-upstream",
                        "provider": "openai",
                        "model": "bench",
                        "base_url": f"{upstream}/v1",
                        "api_key_env": "BENCH_UPSTREAM_KEY",
                        "timeout_s": 60,
                    },
                ],
            }
        )
    )
    (config / "mcp_servers.json").write_text(json.dumps({"servers": {}}))
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fake_upstream.py"), "--port", str(up_port)]
    )
    app_proc = None
    database_url, drop_database = None, None
    if args.postgres:
        database_url, drop_database = fresh_postgres_database(args.postgres)
    try:
        time.sleep(0.5)
        wait_http_post_ready(upstream)
        app_proc = start_app(
            port=app_port,
            workdir=work,
            config_dir=config,
            extra_env={"BENCH_UPSTREAM_KEY": "bench-key"},
            database_url=database_url,
        )
        result = asyncio.run(
            run(upstream, f"http://127.0.0.1:{app_port}", app_proc.pid, args.quick)
        )
        result["command"] = (
            "uv run python bench/chat_relay.py"
            + (" --quick" if args.quick else "")
            + (f" --postgres {args.postgres}" if args.postgres else "")
        )
        result["database"] = "postgresql" if args.postgres else "sqlite"
        name = "chat_relay" + ("_quick" if args.quick else "") + ("_pg" if args.postgres else "")
        path = write_result(name, result)
        print(json.dumps(result, indent=2))
        print(f"written to {path}")
    finally:
        for proc in (app_proc, fake):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
        if drop_database is not None:
            drop_database()


def wait_http_post_ready(url: str) -> None:
    """The fake upstream has no GET route; wait until its port accepts connections."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex((host, int(port))) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("fake upstream did not start")


if __name__ == "__main__":
    main()
