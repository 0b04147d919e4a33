"""WebSocket benchmark (issue 16): idle sockets' memory and event-loop lag; paced streams over
sockets against the same streams over SSE.

    uv run python bench/ws_idle.py               # 1,000 idle sockets; 100 streams x 50 tok/s
    uv run python bench/ws_idle.py --quick       # smoke run (200 sockets, 30 streams)

The app (one uvicorn process) runs on the last core, the fake upstream and this load
generator on the first (bench/chat_relay.py's pinning, app and config). Figures:

* idle: RSS of the app before and after `n` authenticated sockets (each past `auth`, its
  `ready` read) → KiB per socket; the event loop's lag, as the round trip of a probe frame
  (an unknown `type`, answered with an `error` frame by the socket's own task) every 20 ms
  on one more socket, with and without the idle sockets open (loopback adds ~0.1 ms).
* paced: `n` answers at 50 tokens/s from the fake upstream, once as `n` SSE responses
  (`POST /chat/stream`) and once as `n` sockets with one `chat.start` each, alternating
  for `rounds`; the gap between consecutive tokens of one answer, p99 of WS over SSE.

Result: bench/results/ws.json (`ws_quick.json`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.chat_relay import (
    MAX_LOAD,
    CpuWatch,
    Ctx,
    Phase,
    Setup,
    Target,
    _paced_round,
    _with_ctx,
    app_running,
    configure,
    run_loop,
    wait_port,
    write_config,
)
from bench.common import ROOT, free_port, git_commit, raise_nofile, summary, write_result

START = json.dumps(
    {"type": "chat.start", "message": "go", "model": "bench-upstream", "tools": False}
)
PROBE = '{"type":"probe"}'


async def signed_in(port: int, token: str) -> ClientConnection:
    """A socket past `auth`."""
    ws = await connect(f"ws://127.0.0.1:{port}/ws", max_size=None, open_timeout=60)
    await ws.send(json.dumps({"type": "auth", "token": token}))
    ready = json.loads(await ws.recv())
    assert ready["type"] == "ready", ready
    return ws


async def open_sockets(port: int, token: str, n: int) -> list[ClientConnection]:
    """`n` authenticated sockets, 50 handshakes at a time."""
    sockets: list[ClientConnection] = []
    for first in range(0, n, 50):
        sockets += await asyncio.gather(
            *(signed_in(port, token) for _ in range(min(50, n - first)))
        )
    return sockets


async def probe_lag(port: int, token: str, seconds: float) -> dict[str, float]:
    """Round trips (ms) of a probe frame every 20 ms for `seconds`."""
    ws = await signed_in(port, token)
    rtts: list[float] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            await ws.send(PROBE)
            await ws.recv()
            rtts.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.02)
    finally:
        await ws.close()
    return summary(rtts)


async def scenario_idle(ctx: Ctx, n: int, seconds: float) -> dict[str, Any]:
    """RSS per idle socket and the loop's lag with and without them."""
    baseline = await probe_lag(ctx.app_port, ctx.token, seconds / 2)
    await asyncio.sleep(0.5)
    rss_before = ctx.app_rss()
    sockets = await open_sockets(ctx.app_port, ctx.token, n)
    await asyncio.sleep(1.0)
    rss_during = ctx.app_rss()
    # long enough to include a round of the server's keep-alive pings (every 20 s)
    loaded = await probe_lag(ctx.app_port, ctx.token, seconds)
    await asyncio.gather(*(ws.close() for ws in sockets))
    return {
        "sockets": n,
        "rss_before_mib": round(rss_before / 2**20, 2),
        "rss_during_mib": round(rss_during / 2**20, 2),
        "kib_per_socket": round((rss_during - rss_before) / n / 1024, 2),
        "probe_rtt_ms_without": baseline,
        "probe_rtt_ms_with": loaded,
    }


async def _ws_stream(ws: ClientConnection, phase: Phase) -> int:
    """One answer over a socket: count tokens, record gaps; the token count."""
    await ws.send(START)
    tokens, last = 0, 0.0
    while True:
        frame = await ws.recv()
        assert isinstance(frame, str)
        now = time.perf_counter()
        n = frame.count("~")
        if n:
            if tokens:
                phase.gaps.append(now - last)
            last, tokens = now, tokens + n
        elif '"event":"done"' in frame or '"event":"error"' in frame:
            return tokens


async def _ws_round(ctx: Ctx, n: int, tokens: int) -> tuple[Phase, int]:
    phase = Phase(measuring=True)
    sockets = await open_sockets(ctx.app_port, ctx.token, n)
    try:
        counts = await asyncio.wait_for(
            asyncio.gather(*(_ws_stream(ws, phase) for ws in sockets)), 120
        )
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    return phase, sum(1 for c in counts if c != tokens)


async def scenario_paced(ctx: Ctx, n: int, rounds: int, tokens: int) -> dict[str, Any]:
    """`n` answers at 50 tok/s over SSE and over sockets, rounds alternating."""
    await configure(ctx, tokens=tokens, rate=50, ttft_ms=0, pause_after=0)
    sse_gaps: list[float] = []
    ws_gaps: list[float] = []
    errors = 0
    for _ in range(rounds):
        phase, _, err = await _paced_round(ctx, Target.app(ctx.app_port, ctx.token), n, tokens)
        sse_gaps += [g * 1000 for g in phase.gaps]
        errors += err
        phase, err = await _ws_round(ctx, n, tokens)
        ws_gaps += [g * 1000 for g in phase.gaps]
        errors += err
    sse, ws = summary(sse_gaps), summary(ws_gaps)
    return {
        "streams": n,
        "tokens_per_s": 50,
        "rounds": rounds,
        "gap_ms": {"sse": sse, "ws": ws},
        "gap_p99_ratio_ws_over_sse": round(ws["p99"] / max(sse["p99"], 1e-9), 3),
        "errors": errors,
    }


def main() -> int:
    """Start the fake upstream and one app; run both scenarios; write the result."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smoke run: small")
    parser.add_argument("--sockets", type=int, default=None, help="idle sockets (1000)")
    parser.add_argument("--allow-load", action="store_true", help="run even if load avg > 1.5")
    parser.add_argument("--output", help="result file (default bench/results/ws[_quick].json)")
    args = parser.parse_args()
    n_idle = args.sockets or (200 if args.quick else 1000)
    n_streams, rounds, tokens, seconds = (30, 1, 50, 4.0) if args.quick else (100, 2, 100, 25.0)
    load = os.getloadavg()
    if load[0] > MAX_LOAD and not args.allow_load:
        print(f"load average {load[0]:.2f} > {MAX_LOAD}: pass --allow-load", file=sys.stderr)
        return 2
    raise_nofile()
    cores = sorted(os.sched_getaffinity(0))
    app_cores = gen_cores = None
    if len(cores) >= 2:
        app_cores, gen_cores = {cores[-1]}, {cores[0]}
        os.sched_setaffinity(0, gen_cores)
    work = Path(tempfile.mkdtemp(prefix="vektor-ws-bench-"))
    up_port = free_port()
    write_config(work / "config", f"http://127.0.0.1:{up_port}")
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fake_upstream.py"), "--port", str(up_port)]
    )
    setup = Setup(work, up_port, app_cores, gen_cores, None, all_cores=set(cores))
    result: dict[str, Any] = {}
    watch, t0 = CpuWatch(), time.monotonic()
    try:
        wait_port(up_port)
        with app_running(setup, label="ws") as (port, process):

            async def body(ctx: Ctx) -> None:
                result["idle"] = await scenario_idle(ctx, n_idle, seconds)
                result["paced"] = await scenario_paced(ctx, n_streams, rounds, tokens)

            run_loop(_with_ctx(setup, port, [process.pid], args.quick, body))
    finally:
        fake.terminate()
        fake.wait(timeout=30)
    foreign = watch.foreign_cores()
    data = {
        "command": "uv run python bench/ws_idle.py " + " ".join(sys.argv[1:]),
        "git_commit": git_commit(),
        "seconds": round(time.monotonic() - t0, 1),
        "loadavg_before": [round(x, 2) for x in load],
        "other_processes_cpu_cores": foreign,
        "under_load": load[0] > MAX_LOAD or foreign > 0.3,
        "pinning": {"app": sorted(app_cores or []), "load_generator": sorted(gen_cores or [])},
        "rss_note": f"psutil {psutil.__version__}: resident set of the app process",
        **result,
    }
    if args.output:
        path = Path(args.output)
        path.write_text(json.dumps(data, indent=2))
    else:
        path = write_result("ws_quick" if args.quick else "ws", data)
    idle, paced = result["idle"], result["paced"]
    print(f"idle: {idle['kib_per_socket']} KiB/socket (target ≤ 32)")
    print(
        f"lag: probe p99 {idle['probe_rtt_ms_with']['p99']} ms with {n_idle} sockets, "
        f"{idle['probe_rtt_ms_without']['p99']} ms without (target ≤ 5)"
    )
    print(f"paced: gap p99 WS/SSE {paced['gap_p99_ratio_ws_over_sse']} (target ≤ 1.10)")
    print(f"under_load: {data['under_load']} (others used {foreign} cores); {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
