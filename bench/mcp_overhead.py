"""MCP tool-call overhead of the pool versus a bare `mcp.Client`, and failover timing.

Run: `uv run python bench/mcp_overhead.py [--calls 400] [--out results.json]`.

1. Latency of `echo` through a warm `McpPool` and through a bare `mcp.Client` on the
   same server, for stdio and streamable HTTP (batches interleaved so both see the same
   machine load). "added" = pool - bare.
2. Failover: two HTTP replicas under a steady load (4 concurrent callers); one is
   SIGKILLed. Counts the calls that saw an error (idempotent `whoami`, non-idempotent
   `add`), the slowest call after the kill, and - after a restart - how long until the
   balancer sends calls to the restarted replica again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.services.mcp import McpPool, load_mcp_config  # noqa: E402

SERVER = ROOT / "test" / "fakes" / "mcp_test_server.py"
HEALTH_INTERVAL_S = 1.0


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_http(name: str, port: int) -> subprocess.Popen[bytes]:
    """Start one streamable-HTTP test server and wait for its port (blocking)."""
    proc = subprocess.Popen(
        [
            *(sys.executable, str(SERVER), "--transport", "streamable-http"),
            *("--port", str(port), "--name", name),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("test server did not start")


def make_pool(servers: dict[str, Any]) -> McpPool:
    """A pool from a temporary mcp_servers.json."""
    directory = Path(tempfile.mkdtemp(prefix="mcp-bench-"))
    (directory / "mcp_servers.json").write_text(json.dumps({"servers": servers}))
    return McpPool(load_mcp_config(directory))


def summary(samples: list[float]) -> dict[str, float]:
    """mean / p50 / p95 in milliseconds."""
    ordered = sorted(samples)
    return {
        "mean_ms": round(statistics.fmean(ordered), 3),
        "p50_ms": round(ordered[len(ordered) // 2], 3),
        "p95_ms": round(ordered[int(len(ordered) * 0.95)], 3),
    }


async def overhead(label: str, target: Any, servers: dict[str, Any], calls: int) -> dict[str, Any]:
    """Interleaved batches of echo calls through the pool and through a bare client."""
    pool = make_pool(servers)
    await pool.start()
    assert await pool.wait_until_ready(60), pool.status()
    bare_samples: list[float] = []
    pool_samples: list[float] = []
    async with Client(target, cache=None) as bare:
        await bare.list_tools()
        for _ in range(20):  # warm both paths
            await bare.call_tool("echo", {"text": "warm"})
            await pool.call("b__echo", {"text": "warm"})
        batch = 20
        for _ in range(max(1, calls // batch)):
            for _ in range(batch):
                started = time.perf_counter()
                await bare.call_tool("echo", {"text": "hello"})
                bare_samples.append((time.perf_counter() - started) * 1000)
            for _ in range(batch):
                started = time.perf_counter()
                outcome = await pool.call("b__echo", {"text": "hello"})
                pool_samples.append((time.perf_counter() - started) * 1000)
                assert outcome.status == "ok", outcome.content
    await pool.aclose()
    bare_stats, pool_stats = summary(bare_samples), summary(pool_samples)
    return {
        "transport": label,
        "calls": len(pool_samples),
        "bare_client": bare_stats,
        "pool": pool_stats,
        "added_p50_ms": round(pool_stats["p50_ms"] - bare_stats["p50_ms"], 3),
        "added_mean_ms": round(pool_stats["mean_ms"] - bare_stats["mean_ms"], 3),
    }


def failover_report(
    tool: str,
    log: list[tuple[float, float, str, str]],
    *,
    killed_at: float,
    restarted_at: float,
    port_open_at: float,
    rejoined_at: float | None,
) -> dict[str, Any]:
    """Errors and timings from the call log of one failover run."""
    after_kill = [end - start for start, end, _, _ in log if killed_at <= end <= killed_at + 1.5]
    errors = [(start, end, content) for start, end, status, content in log if status != "ok"]
    first_error_end = min((end for _, end, _ in errors), default=None)
    later = [1 for start, _, _ in errors if first_error_end is not None and start > first_error_end]
    return {
        "tool": tool,
        "idempotent": tool == "whoami",
        "calls": len(log),
        "calls_with_error": len(errors),
        "errors_after_the_first_failed_call": len(later),
        "error_samples": [content[:160] for _, _, content in errors[:3]],
        "slowest_call_after_kill_ms": round(max(after_kill) * 1000, 1) if after_kill else None,
        "process_start_to_serving_ms": (
            round((rejoined_at - restarted_at) * 1000, 1) if rejoined_at else None
        ),
        "port_open_to_serving_ms": (
            round((rejoined_at - port_open_at) * 1000, 1) if rejoined_at else None
        ),
        "health_interval_s": HEALTH_INTERVAL_S,
    }


async def failover(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Kill one of two replicas under load, then restart it; count errors and time recovery."""
    ports = [free_port(), free_port()]
    procs = [start_http("A", ports[0]), start_http("B", ports[1])]
    pool = make_pool(
        {
            "b": {
                "transport": "streamable_http",
                "endpoints": [f"http://127.0.0.1:{p}/mcp" for p in ports],
                "strategy": "round_robin",
                "idempotent_tools": ["whoami"],
                "timeout_s": 5,
                "connect_timeout_s": 2,
                "health_interval_s": HEALTH_INTERVAL_S,
            }
        }
    )
    await pool.start()
    assert await pool.wait_until_ready(30)
    while pool.status()[0]["status"] != "healthy":
        await asyncio.sleep(0.05)
    log: list[tuple[float, float, str, str]] = []
    stop = asyncio.Event()

    async def caller() -> None:
        while not stop.is_set():
            began = time.monotonic()
            outcome = await pool.call(f"b__{tool}", arguments)
            log.append((began, time.monotonic(), outcome.status, outcome.content))

    callers = [asyncio.create_task(caller()) for _ in range(4)]
    await asyncio.sleep(1.0)
    killed_at = time.monotonic()
    procs[0].kill()
    procs[0].wait()
    await asyncio.sleep(2.0)
    restarted_at = time.monotonic()
    procs[0] = await asyncio.to_thread(start_http, "A", ports[0])  # callers keep running
    port_open_at = time.monotonic()
    rejoined_at = None
    while time.monotonic() < port_open_at + 10 * HEALTH_INTERVAL_S:
        if (await pool.call("b__whoami", {})).content == "A":
            rejoined_at = time.monotonic()
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*callers)
    await pool.aclose()
    for proc in procs:
        proc.kill()
        proc.wait()
    return failover_report(
        tool,
        log,
        killed_at=killed_at,
        restarted_at=restarted_at,
        port_open_at=port_open_at,
        rejoined_at=rejoined_at,
    )


async def main() -> None:
    """Run every measurement and print (or write) one JSON document."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    stdio_args = [str(SERVER), "--transport", "stdio", "--name", "bench"]
    results: dict[str, Any] = {"overhead": [], "failover": []}
    results["overhead"].append(
        await overhead(
            "stdio",
            StdioServerParameters(command=sys.executable, args=stdio_args),
            {"b": {"transport": "stdio", "command": sys.executable, "args": stdio_args}},
            args.calls,
        )
    )
    port = free_port()
    proc = start_http("bench", port)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        results["overhead"].append(
            await overhead(
                "streamable_http",
                url,
                {"b": {"transport": "streamable_http", "endpoints": [url]}},
                args.calls,
            )
        )
    finally:
        proc.kill()
        proc.wait()
    results["failover"].append(await failover("whoami", {}))
    results["failover"].append(await failover("add", {"a": 1, "b": 2}))
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    asyncio.run(main())
