"""Where the app's CPU goes during one benchmark scenario: py-spy samples, summed by area.

`chat_relay.py --profile DIR` records each scenario of the first repeat with py-spy (the
thread holding the GIL only, so a sample is CPU the app's core spent in Python; py-spy runs
beside the load generator, not on the app's core, and does not pause the app) and writes
`DIR/<scenario>.txt` (this summary) next to the raw stacks (`<scenario>.raw`, for
flame-graph tools). Run it on its own on a file with

    uv run python bench/profile.py DIR/paced.raw

The summary has three tables: self time by area (the package of the innermost Python frame:
uvicorn, Starlette/FastAPI, aiohttp, the event loop, the app's packages, ...), the app's own
functions by inclusive time, and the innermost frames with the most samples.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

# the first matching pattern (in the frame's file path) names the area of a sample
AREAS: tuple[tuple[str, str], ...] = (
    ("/uvicorn/", "uvicorn (HTTP parsing, socket writes)"),
    ("/httptools/", "uvicorn (HTTP parsing, socket writes)"),
    ("/fastapi/", "FastAPI + Starlette (routing, dependencies, responses)"),
    ("/starlette/", "FastAPI + Starlette (routing, dependencies, responses)"),
    ("/pydantic", "pydantic (request and settings models)"),
    ("/aiohttp/", "aiohttp (upstream client)"),
    ("/multidict/", "aiohttp (upstream client)"),
    ("/yarl/", "aiohttp (upstream client)"),
    ("/sqlalchemy/", "SQLAlchemy + drivers"),
    ("/aiosqlite/", "SQLAlchemy + drivers"),
    ("/asyncpg/", "SQLAlchemy + drivers"),
    ("/sqlite3/", "SQLAlchemy + drivers"),
    ("/jwt/", "JWT + crypto"),
    ("/cryptography/", "JWT + crypto"),
    ("/loguru/", "logging"),
    ("/logging/", "logging"),
    ("/redis/", "redis"),
    ("/anyio/", "anyio"),
    ("/asyncio/", "event loop (asyncio)"),
    ("/uvloop/", "event loop (asyncio)"),
    ("/app/api/", "app: api (routes, deps, streaming response)"),
    ("/app/observability/", "app: observability (middleware, metrics)"),
    ("/app/services/chat/", "app: chat (turn, agent loop, event log)"),
    ("/app/services/llm/", "app: llm (providers, SSE parsing)"),
    ("/app/db/", "app: db (writes, availability)"),
    ("/app/repositories/", "app: repositories"),
    ("/app/core/", "app: core (security, sse, rate limits)"),
    ("/app/", "app: other"),
)
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def area(path: str) -> str:
    """The area a source file belongs to ("other" for the standard library and the rest);
    py-spy names files relative to their `sys.path` entry (`uvicorn/main.py`, `app/...`)."""
    path = path if path.startswith("/") else "/" + path
    for pattern, name in AREAS:
        if pattern in path:
            return name
    return "other (standard library, uuid, json, ...)"


def parse(raw: str) -> Iterator[tuple[list[tuple[str, str]], int]]:
    """`([(function, file), ...] outermost first, samples)` per line of py-spy's raw format."""
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for part in stack.split(";"):
            match = _FRAME.match(part)
            if match:  # skips the process/thread entries
                frames.append((match["func"], match["file"]))
        if frames:
            yield frames, int(count)


def _short(func: str, file: str) -> str:
    for marker in ("/site-packages/", "/work/main/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{func} ({file})"


def summarize(raw: str, *, top: int = 25) -> dict[str, object]:
    """Self time by area, the app's functions by inclusive time, the hottest frames."""
    total = 0
    by_area: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in parse(raw):
        total += count
        func, file = frames[-1]
        by_area[area(file)] += count
        leaves[_short(func, file)] += count
        seen = {_short(f, p) for f, p in frames if area(p).startswith("app: ")}
        for name in seen:
            inclusive[name] += count

    def share(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(n)] if total else []

    return {
        "samples": total,
        "self_by_area_pct": share(by_area, len(by_area)),
        "app_inclusive_pct": share(inclusive, top),
        "hottest_frames_pct": share(leaves, top),
    }


def render(summary: dict[str, object], *, title: str) -> str:
    """The summary as plain text tables."""
    lines = [f"# {title}", f"samples (GIL held): {summary['samples']}", ""]
    for key, heading in (
        ("self_by_area_pct", "self time by area"),
        ("app_inclusive_pct", "the app's functions, inclusive"),
        ("hottest_frames_pct", "innermost Python frames"),
    ):
        lines.append(f"## {heading} (% of samples)")
        for name, pct in summary[key]:  # type: ignore[attr-defined]
            lines.append(f"{pct:6.1f}  {name}")
        lines.append("")
    return "\n".join(lines)


@contextlib.contextmanager
def recording(pid: int, raw_path: Path, *, rate: int = 500) -> Iterator[None]:
    """py-spy samples process `pid` while the block runs; the raw stacks go to `raw_path`."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [exe, "record", "--pid", str(pid), "--rate", str(rate), "--gil", "--nonblocking"]
    process = subprocess.Popen(
        [*command, "--format", "raw", "--output", str(raw_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        try:
            _, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        if not raw_path.exists():
            print(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}", file=sys.stderr)


def write_summary(raw_path: Path, *, title: str) -> Path | None:
    """`<raw>.txt` beside the raw stacks (None if py-spy wrote nothing)."""
    if not raw_path.exists():
        return None
    out = raw_path.with_suffix(".txt")
    out.write_text(render(summarize(raw_path.read_text()), title=title) + "\n")
    return out


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(render(summarize(Path(name).read_text()), title=name))
