"""Uploads keep the event loop free and the server's memory flat (issue 13).

    uv run python bench/uploads.py [--size-mb 20] [--concurrency 5] [--rounds 3]
                                   [--rate-mb-s 0] [--streams 0] [--out FILE]

Starts the app with uvicorn on a free 127.0.0.1 port (a temporary SQLite database, local
file storage), registers a user, uploads one file to warm up, then:
- polls /health every 50 ms with the server idle, then while `concurrency` clients upload
  distinct `size-mb` MB text files back to back for `rounds` rounds each (the bodies are sent
  in 64 KiB chunks, from a child process so the probe's own loop is not the one sending):
  if reading, hashing, type checking or storing ran on the event loop, /health would wait
  behind it;
- samples the server's RSS every 20 ms: the growth from the warmed-up baseline to the peak
  while the uploads run, divided by the number of concurrent uploads, is the memory one
  upload costs (the target is < 2 MB: the body is never held in memory);
- with `--streams N`: N chat answers of the offline echo model at 50 tokens/s run through
  both phases (started again as each ends), and the gap between consecutive tokens is
  compared: p99 with uploads / p99 without (issue 13's target: <= 1.10x).
Prints the figures as JSON and writes them to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.login_health import free_port, poll_health, server, summary, wait_ready

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench password 12345"
CHUNK = 64 * 1024
BOUNDARY = "benchboundary"


def body_chunks(tag: str, size: int, rate: float = 0) -> AsyncIterator[bytes]:
    """A multipart body whose file is `size` bytes of text lines starting with `tag`, sent
    at `rate` bytes per second (0: as fast as the connection takes it)."""
    line = (tag + " " + "x" * 90 + "\n").encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{tag}.txt"\r\nContent-Type: text/plain\r\n\r\n'
        ).encode()
        block = line * (CHUNK // len(line))
        sent = 0
        started = time.perf_counter()
        while sent < size:
            piece = block[: size - sent]
            sent += len(piece)
            yield piece
            if rate:
                await asyncio.sleep(max(0.0, started + sent / rate - time.perf_counter()))
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    return chunks()


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], tag: str, size: int, rate: float = 0
) -> float:
    """One upload; its duration in seconds."""
    started = time.perf_counter()
    response = await client.post(
        "/files",
        content=body_chunks(tag, size, rate),
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    if response.status_code != 201:
        raise RuntimeError(f"upload {tag}: {response.status_code} {response.text}")
    return time.perf_counter() - started


def upload_process(
    base_url: str,
    headers: dict[str, str],
    size: int,
    concurrency: int,
    rounds: int,
    rate: float,
    out: Any,
) -> None:
    """The uploaders, in a child process: durations (s) and elapsed time into `out`."""

    async def main() -> None:
        durations: list[float] = []
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=base_url, timeout=300, limits=limits) as client:

            async def uploader(index: int) -> None:
                for r in range(rounds):
                    tag = f"u{index}r{r}"
                    durations.append(await upload(client, headers, tag, size, rate))

            started = time.perf_counter()
            await asyncio.gather(*(uploader(i) for i in range(concurrency)))
            out.put((durations, time.perf_counter() - started))

    asyncio.run(main())


STREAM_TEXT = " ".join(f"word{i}" for i in range(150))  # echoed word by word: ~3 s at 50 tok/s


async def stream_loop(
    client: httpx.AsyncClient, headers: dict[str, str], stop: asyncio.Event, gaps: list[list[float]]
) -> None:
    """Chat answers back to back until `stop`; each answer's token gaps (ms) go to the list
    that is last in `gaps` when the token arrives (the caller appends one list per phase)."""
    body = {"message": STREAM_TEXT, "model": "vektor-echo"}
    while not stop.is_set():
        async with client.stream("POST", "/chat/stream", json=body, headers=headers) as answer:
            last = None
            async for line in answer.aiter_lines():
                if not line.startswith("event: delta"):
                    continue
                now = time.perf_counter()
                if last is not None:
                    gaps[-1].append((now - last) * 1000)
                last = now


async def sample_rss(process: psutil.Process, stop: asyncio.Event) -> list[int]:
    """The server's RSS every 20 ms until `stop`."""
    samples: list[int] = []
    while not stop.is_set():
        samples.append(process.memory_info().rss)
        await asyncio.sleep(0.02)
    return samples


async def measure(
    base_url: str,
    headers: dict[str, str],
    pid: int,
    *,
    size: int,
    concurrency: int,
    rounds: int,
    rate: float,
    streams: int,
) -> dict[str, Any]:
    """Idle /health, then /health and RSS while the uploads run (and token gaps of chat
    streams in both phases)."""
    process = psutil.Process(pid)
    gaps: list[list[float]] = [[]]
    streams_stop = asyncio.Event()
    stream_client = httpx.AsyncClient(
        base_url=base_url, timeout=120, limits=httpx.Limits(max_connections=streams + 1)
    )
    runners = [
        asyncio.create_task(stream_loop(stream_client, headers, streams_stop, gaps))
        for _ in range(streams)
    ]
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as health_client:
        if streams:
            await asyncio.sleep(2)  # the streams get going
            gaps[-1].clear()
        stop = asyncio.Event()
        poller = asyncio.create_task(poll_health(health_client, stop))
        await asyncio.sleep(5 if streams else 3)
        stop.set()
        idle = await poller
        baseline = process.memory_info().rss
        gaps.append([])

        stop = asyncio.Event()
        poller = asyncio.create_task(poll_health(health_client, stop))
        sampler = asyncio.create_task(sample_rss(process, stop))
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        child = context.Process(
            target=upload_process,
            args=(base_url, headers, size, concurrency, rounds, rate, results),
        )
        child.start()
        durations, elapsed = await asyncio.to_thread(results.get, True, 600)
        await asyncio.to_thread(child.join, 60)
        stop.set()
        loaded = await poller
        rss = await sampler
    streams_stop.set()
    await asyncio.gather(*runners)
    await stream_client.aclose()
    peak = max(rss)
    growth = peak - baseline
    stream_figures: dict[str, Any] = {}
    if streams:
        quiet, busy = (summary(phase) for phase in gaps)
        stream_figures = {
            "streams": streams,
            "token_gap_without_uploads": quiet,
            "token_gap_during_uploads": busy,
            "gap_p99_ratio": round(busy["p99_ms"] / quiet["p99_ms"], 2),
        }
    return {
        **stream_figures,
        "health_idle": summary(idle),
        "health_during_uploads": summary(loaded),
        "uploads": len(durations),
        "upload_s": {"median": round(sorted(durations)[len(durations) // 2], 2)},
        "throughput_mb_s": round(len(durations) * size / 1e6 / elapsed, 1),
        "rss_baseline_mb": round(baseline / 1e6, 1),
        "rss_peak_mb": round(peak / 1e6, 1),
        "rss_growth_mb": round(growth / 1e6, 2),
        "rss_growth_per_concurrent_upload_mb": round(growth / 1e6 / concurrency, 2),
    }


async def run(
    size_mb: float, concurrency: int, rounds: int, rate_mb_s: float, streams: int
) -> dict[str, Any]:
    """Start the server, register, warm up, measure."""
    size = int(size_mb * 1_000_000)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with (
        tempfile.TemporaryDirectory(prefix="vektor-bench-") as tmp,
        server(port, Path(tmp)) as proc,
    ):
        async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
            await wait_ready(client, proc)
            user = {"email": "bench@example.com", "username": "bench", "password": PASSWORD}
            (await client.post("/auth/register", json=user)).raise_for_status()
            login = await client.post(
                "/auth/login", json={"username": "bench", "password": PASSWORD}
            )
            login.raise_for_status()
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            for i in range(concurrency):  # warm-up: modules, threads, connections
                await upload(client, headers, f"warm{i}", size)
        figures = await measure(
            base_url,
            headers,
            proc.pid,
            size=size,
            concurrency=concurrency,
            rounds=rounds,
            rate=rate_mb_s * 1_000_000,
            streams=streams,
        )
    return {
        "benchmark": "uploads",
        "size_mb": size_mb,
        "concurrency": concurrency,
        "rounds": rounds,
        "rate_mb_s_per_upload": rate_mb_s or "unlimited",
        "storage": "local",
        "database": "sqlite",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        **figures,
    }


def main() -> int:
    """Parse options, run, print and save the JSON."""
    parser = argparse.ArgumentParser(description="/health latency and RSS during uploads")
    parser.add_argument("--size-mb", type=float, default=20.0, help="each upload (MB)")
    parser.add_argument("--concurrency", type=int, default=5, help="uploads at once")
    parser.add_argument("--rounds", type=int, default=3, help="uploads per client")
    parser.add_argument(
        "--rate-mb-s", type=float, default=0, help="each client's send rate (0: unlimited)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "uploads.json")
    parser.add_argument(
        "--streams", type=int, default=0, help="chat streams at 50 tok/s beside the uploads"
    )
    args = parser.parse_args()
    # the chat streams: many answers at once for one user, 50 tokens/s each, no rate limit
    os.environ.setdefault("MAX_CONCURRENT_GENERATIONS", str(max(3, args.streams + 1)))
    os.environ.setdefault("ECHO_DELAY_MS", "20")
    result = asyncio.run(
        run(args.size_mb, args.concurrency, args.rounds, args.rate_mb_s, args.streams)
    )
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
