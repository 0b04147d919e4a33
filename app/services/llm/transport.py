"""HTTP plumbing shared by the upstream providers: sessions, timeouts, keys and error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import aiohttp
import yarl

from app.services.llm.base import ModelConfig, ProviderError
from app.services.llm.sse import HEAD_BYTES, SSEParser

MAX_ERROR_BODY = 64 * 1024
MAX_MESSAGE_CHARS = 300
NOT_A_STREAM_CHARS = 200  # quoted from a 2xx body that was not an event stream
# what reading a stream can raise besides ProviderError; parse errors mean a garbled stream
STREAM_FAILURES = (
    aiohttp.ClientError,
    TimeoutError,
    ValueError,
    LookupError,
    TypeError,
    AttributeError,
)
_KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9_*.-]{6,}")  # OpenAI/Anthropic key shapes
# the idle watchdog looks every `limit / 4` (so a stream is cut within 1.25 x its limit),
# at least every second and at most 20 times a second
WATCH_MIN_TICK_S = 0.05
WATCH_MAX_TICK_S = 1.0


def new_session(*, limit: int = 1000) -> aiohttp.ClientSession:
    """One pooled keep-alive session for many concurrent streams (call inside the loop)."""
    connector = aiohttp.TCPConnector(limit=limit, ttl_dns_cache=300, keepalive_timeout=30)
    return aiohttp.ClientSession(connector=connector, raise_for_status=False)


def request_timeout(*, model: ModelConfig) -> aiohttp.ClientTimeout:
    """No total limit (answers can be long); bounded connect and per-read waits.

    `sock_read` bounds the wait for the response headers; once they are in, aiohttp's timer
    (rescheduled on every chunk: a timer per token) is turned off and `IdleWatchdog` keeps
    the same limit on the gaps of the body."""
    return aiohttp.ClientTimeout(
        total=None,
        connect=model.timeout_s,
        sock_connect=min(model.timeout_s, 10.0),
        sock_read=model.timeout_s,
    )


class _Watch:
    """One watched response body: how much of it had arrived, and since when."""

    __slots__ = ("content", "limit", "protocol", "seen", "since")

    def __init__(self, response: aiohttp.ClientResponse, limit: float, now: float) -> None:
        self.content = response.content
        connection = response.connection
        self.protocol = connection.protocol if connection is not None else None
        self.limit = limit
        self.seen = self.content.total_bytes
        self.since = now


class IdleWatchdog:
    """The inter-chunk time limit of every open upstream body, kept by one coarse timer.

    aiohttp's `sock_read` cancels and re-arms a timer on every chunk it receives, which at
    one token per read is a timer per token. Here nothing happens per chunk: the watchdog
    wakes every `limit / 4`, compares each body's byte count with what it saw last time,
    and fails a body idle for longer than its limit the way aiohttp would (a
    `SocketTimeoutError` on the reader, the connection not reused)."""

    def __init__(self) -> None:  # no reference to its loop: `_WATCHDOGS` holds that weakly
        self._watches: set[_Watch] = set()
        self._tick = WATCH_MAX_TICK_S
        self._task: asyncio.Task[None] | None = None

    def watch(self, response: aiohttp.ClientResponse, limit: float) -> _Watch:
        """Start watching a response body (its headers are in)."""
        loop = asyncio.get_running_loop()
        entry = _Watch(response, limit, loop.time())
        self._watches.add(entry)
        tick = min(WATCH_MAX_TICK_S, max(WATCH_MIN_TICK_S, limit / 4))
        if self._task is None or self._task.done() or tick < self._tick:
            if self._task is not None:
                self._task.cancel()  # asleep for a longer tick than this stream needs
            self._tick = tick
            self._task = loop.create_task(self._run(), name="upstream-idle-watchdog")
        return entry

    def unwatch(self, entry: _Watch) -> None:
        """The body is read (or abandoned)."""
        self._watches.discard(entry)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._watches:  # ends with the last stream: nothing left behind at shutdown
                await asyncio.sleep(self._tick)
                now = loop.time()
                for entry in list(self._watches):
                    total = entry.content.total_bytes
                    if total != entry.seen:
                        entry.seen, entry.since = total, now
                    elif now - entry.since > entry.limit:
                        self._watches.discard(entry)
                        exc = aiohttp.SocketTimeoutError("Timeout on reading data from socket")
                        if entry.protocol is not None:
                            entry.protocol.set_exception(exc)  # the connection is not reused
                        entry.content.set_exception(exc)
        finally:
            if self._task is asyncio.current_task():
                self._task = None  # a finished task would hold the loop this is keyed by

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> IdleWatchdog:
        """The watchdog of this event loop."""
        watchdog = _WATCHDOGS.get(loop)
        if watchdog is None:
            watchdog = _WATCHDOGS[loop] = cls()
        return watchdog


_WATCHDOGS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, IdleWatchdog] = (
    weakref.WeakKeyDictionary()
)


@contextlib.contextmanager
def idle_limit(response: aiohttp.ClientResponse, limit: float) -> Iterator[None]:
    """Hand the body's inter-chunk limit from aiohttp's per-chunk timer to the watchdog."""
    connection = response.connection
    if connection is None or connection.protocol is None:  # the body is already complete
        yield
        return
    protocol = connection.protocol
    protocol.read_timeout = None
    protocol.start_timeout()  # drops the timer armed by the last chunk of the headers
    watchdog = IdleWatchdog.of(asyncio.get_running_loop())
    entry = watchdog.watch(response, limit)
    try:
        yield
    finally:
        watchdog.unwatch(entry)


def api_key(*, model: ModelConfig, environ: Mapping[str, str]) -> str | None:
    """The key named by `api_key_env`, or None for keyless servers; a missing one is an error."""
    if not model.api_key_env:
        return None
    key = environ.get(model.api_key_env, "").strip()
    if not key:
        raise ProviderError(
            "upstream_auth",
            f"model {model.id!r}: environment variable {model.api_key_env} is unset",
        )
    return key


def redact(text: str, *, key: str | None) -> str:
    """Remove the key (and anything that looks like one) and shorten the text for a message."""
    if key:
        text = text.replace(key, "[REDACTED]")
    text = _KEY_LIKE.sub("[REDACTED]", " ".join(text.split()))
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 3] + "..."
    return text


def code_for_status(status: int) -> str:
    """Map an upstream HTTP status to a `ProviderError` code."""
    if status in (401, 403):
        return "upstream_auth"
    if status == 429:
        return "upstream_rate_limited"
    if status in (400, 404, 413, 422):
        return "upstream_bad_request"
    if status == 408:
        return "upstream_timeout"
    if status >= 500:
        return "upstream_unavailable"
    return "upstream_error"


def error_text(body: Any) -> str:
    """The human message inside an OpenAI- or Anthropic-style error body, else the raw body."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail")
            if message:
                return str(message)
        elif isinstance(error, str):
            return error
        return json.dumps(body)[:MAX_MESSAGE_CHARS]
    return str(body)


async def error_from_response(
    response: aiohttp.ClientResponse, *, provider: str, key: str | None
) -> ProviderError:
    """Build the `ProviderError` for a non-2xx response, quoting the upstream's own message."""
    raw = await response.content.read(MAX_ERROR_BODY)
    text = raw.decode("utf-8", "replace")
    with contextlib.suppress(ValueError):  # not JSON: quote the text as it is
        text = error_text(json.loads(text))
    status = response.status
    detail = redact(text, key=key) or response.reason or "no details"
    return ProviderError(
        code_for_status(status), f"{provider} upstream returned {status}: {detail}", status=status
    )


def error_from_exception(exc: BaseException, *, provider: str, url: str) -> ProviderError:
    """Map a transport-level failure (refused, reset, timed out) to a `ProviderError`."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, TimeoutError):
        return ProviderError("upstream_timeout", f"{provider} upstream timed out ({url})")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ProviderError(
            "upstream_unavailable", f"{provider} upstream unreachable ({url}): {exc.os_error}"
        )
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return ProviderError(
            "upstream_unavailable", f"{provider} upstream closed the stream before it finished"
        )
    if isinstance(exc, aiohttp.ClientConnectionError | ConnectionError):
        return ProviderError("upstream_unavailable", f"{provider} upstream connection failed")
    if isinstance(exc, ValueError | AttributeError | TypeError | LookupError):
        return ProviderError(
            "upstream_protocol", f"{provider} upstream sent an unreadable stream event"
        )
    return ProviderError("upstream_error", f"{provider} upstream failed: {type(exc).__name__}")


@contextlib.asynccontextmanager
async def open_stream(
    session: aiohttp.ClientSession,
    *,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    model: ModelConfig,
    provider: str,
    key: str | None,
) -> AsyncIterator[AsyncIterator[bytes]]:
    """POST `body` and give the `data` of each SSE event of the response, read to its end
    (so the connection goes back to the pool even after the stream's own end marker).

    A non-2xx answer, a transport failure, and anything the caller raises while reading
    (an unreadable event) all leave as one `ProviderError` with a useful code."""
    try:
        async with session.post(
            url,
            data=json.dumps(body, ensure_ascii=False).encode(),
            headers=headers,
            timeout=request_timeout(model=model),
        ) as response:
            if response.status >= 300:
                raise await error_from_response(response, provider=provider, key=key)
            with idle_limit(response, model.timeout_s):
                yield _payloads(response, provider=provider, key=key)
    except ProviderError:
        raise
    except STREAM_FAILURES as exc:
        raise error_from_exception(exc, provider=provider, url=display_url(url)) from exc


async def _payloads(
    response: aiohttp.ClientResponse, *, provider: str, key: str | None
) -> AsyncIterator[bytes]:
    """The `data` of every event; a body without a single event says what came instead.

    One generator between the socket and the provider (the per-token path): each read is
    split into events here, and `readany` is awaited directly."""
    parser = SSEParser()
    head = bytearray()  # the first reads that completed no event, quoted if none ever does
    streamed = False
    read = response.content.readany
    while chunk := await read():
        events = parser.feed(chunk)
        if events:
            streamed = True
            for _event, data in events:
                yield data
        elif len(head) < HEAD_BYTES:
            head += chunk[: HEAD_BYTES - len(head)]
    for _event, data in parser.close():
        streamed = True
        yield data
    if not streamed:
        raise not_a_stream(response.content_type, bytes(head), provider=provider, key=key)


def not_a_stream(
    content_type: str, head: bytes, *, provider: str, key: str | None
) -> ProviderError:
    """A 2xx answer that was not an event stream (e.g. a server that ignored `stream: true`)."""
    text = redact(head.decode("utf-8", "replace"), key=key)  # keys out before cutting
    if len(text) > NOT_A_STREAM_CHARS:
        text = text[:NOT_A_STREAM_CHARS] + "..."
    return ProviderError(
        "upstream_protocol",
        f"{provider} upstream: expected an event stream, got {content_type or 'no content type'}"
        f": {text or '(empty body)'}",
    )


def display_url(url: str) -> str:
    """The URL without credentials or query, safe for messages and logs."""
    parsed = yarl.URL(url)
    return str(parsed.with_user(None).with_query(None).with_fragment(None))


def decode_arguments(text: str) -> dict[str, Any]:
    """Decode tool-call arguments; keep text the model garbled as `{"_raw": text}`."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_raw": text}


def object_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Both APIs want an object schema; an empty one becomes `{"type": "object"}`."""
    if not schema:
        return {"type": "object", "properties": {}}
    if "type" not in schema:
        return {"type": "object", **schema}
    return schema


def arguments_text(arguments: dict[str, Any]) -> str:
    """Arguments as the JSON string OpenAI expects (raw text the model sent stays as it was)."""
    raw = arguments.get("_raw")
    if len(arguments) == 1 and isinstance(raw, str):
        return raw
    return json.dumps(arguments, ensure_ascii=False)


def join_url(base_url: str | None, path: str) -> str:
    """`base_url` + `path`, tolerating a trailing slash and a base that already ends in the path."""
    base = (base_url or "").rstrip("/")
    first = "/" + path.strip("/").split("/", 1)[0]
    if base.endswith(first) and path.startswith(first + "/"):
        return base + path[len(first) :]
    return base + path
