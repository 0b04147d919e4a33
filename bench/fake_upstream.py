"""Benchmark upstream: an OpenAI-compatible streaming server with tunable timing.

Each token carries the wall-clock time (ns) at which it was written, so the load generator
can measure per-token lag through the app. Timing is set per run with `POST /config`
`{"tokens": N, "rate": tokens_per_s, "ttft_ms": ms}`.

    uv run python bench/fake_upstream.py --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from aiohttp import web

CONFIG: dict[str, Any] = {"tokens": 200, "rate": 50.0, "ttft_ms": 0.0}


def _chunk(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def configure(request: web.Request) -> web.Response:
    """Set token count, rate and time to first token for the following streams."""
    CONFIG.update(await request.json())
    return web.json_response(CONFIG)


async def completions(request: web.Request) -> web.StreamResponse:
    """Stream `tokens` chunks at `rate` per second after `ttft_ms`."""
    await request.read()
    tokens, rate, ttft = int(CONFIG["tokens"]), float(CONFIG["rate"]), float(CONFIG["ttft_ms"])
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    start = time.monotonic() + ttft / 1000
    base = {"id": "bench", "object": "chat.completion.chunk", "model": "bench"}
    for i in range(tokens):
        delay = start + (i / rate if rate > 0 else 0) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        content = f"{time.time_ns()} "
        await response.write(
            _chunk({**base, "choices": [{"index": 0, "delta": {"content": content}}]})
        )
    await response.write(
        _chunk({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    )
    await response.write(
        _chunk({**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": tokens}})
    )
    await response.write(b"data: [DONE]\n\n")
    return response


def main() -> None:
    """Serve on 127.0.0.1."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/config", configure)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
