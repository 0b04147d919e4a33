"""Logging under gunicorn: the master writes every worker's lines; a killed worker stalls no one.

The gunicorn tests start `python main.py prod --workers 2` on a free loopback port with its
own LOG_DIR, database, CONFIG_DIR and a database of the suite's private Redis (several workers
refuse to start without one), and read the files after a SIGTERM. The relay tests exercise
`app.observability.log_relay` in this process.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from loguru import logger

from app.db.migrate import upgrade_head
from app.observability.log_relay import Forwarder, LogRelay, RelayedLine
from app.observability.logging import render_line
from test.support.net import free_port
from test.support.redis_server import private_redis_url
from test.support.waiting import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 40
JSON_HEADERS = {"Accept": "application/json"}
REDIS_DB = 11


@dataclass
class Server:
    """A running `python main.py prod --workers 2` and where it writes."""

    proc: subprocess.Popen[bytes]
    base_url: str
    log_dir: Path
    output: Path

    def tail(self) -> str:
        """The end of the server's own stdout/stderr, for failure messages."""
        return self.output.read_text(errors="replace")[-3000:]

    def stop(self) -> int:
        """SIGTERM the master and wait (bounded) for it to exit; its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the master ignored SIGTERM:\n{self.tail()}") from None


@contextmanager
def gunicorn(tmp_path: Path, **settings: str) -> Iterator[Server]:
    """Start the service with two workers; whatever happens, nothing outlives the test."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'vektor.db'}"
    upgrade_head(url)  # once, before the workers (which must not migrate concurrently)
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(ROOT / "config" / "model_configs.json", config / "model_configs.json")
    (config / "mcp_servers.json").write_text('{"servers": {}}', encoding="utf-8")
    port = free_port()
    redis = private_redis_url(REDIS_DB)  # several workers refuse to start without Redis
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS", "VEKTOR"))}
    env.update(
        DATABASE_URL=url, DB_AUTO_MIGRATE="false", ENVIRONMENT="development",
        SECRET_KEY="multi-process-logging-" + "k" * 40, LOG_DIR=str(tmp_path / "logs"),
        DATA_DIR=str(tmp_path / "data"), CONFIG_DIR=str(config), LOG_LEVEL="INFO",
        LOG_FORMAT="structured", LOG_ROTATION="20 MB", HOST="127.0.0.1", PORT=str(port),
        REDIS_URL=redis, RATE_LIMIT_ENABLED="false", GRACEFUL_TIMEOUT="10",
    )  # fmt: skip
    env.update(settings)
    output = tmp_path / "server.out"
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "main.py", "prod", "--workers", "2"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed as a whole on failure
        )
    server = Server(proc, f"http://127.0.0.1:{port}", tmp_path / "logs", output)
    try:
        with client_for(server) as client:

            def live() -> bool:
                assert proc.poll() is None, server.tail()
                try:
                    return client.get("/health/live").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(live, START_TIMEOUT_S, "the server to start")
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def client_for(server: Server, timeout: float = 10) -> httpx.Client:
    """A client that opens a new connection per request (so gunicorn spreads them)."""
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(base_url=server.base_url, timeout=timeout, limits=limits)


def status_pid(client: httpx.Client, request_id: str) -> int:
    """GET /api/status with a request id; the pid of the worker that answered."""
    response = client.get("/api/status", headers={**JSON_HEADERS, "X-Request-ID": request_id})
    assert response.status_code == 200, response.text
    return int(response.json()["worker"]["pid"])


def send_requests(server: Server, prefix: str, count: int) -> dict[str, int]:
    """`count` concurrent requests with ids `prefix-N`; the pid that answered each."""
    with client_for(server) as client, ThreadPoolExecutor(max_workers=8) as pool:
        ids = [f"{prefix}-{n}" for n in range(count)]
        return dict(zip(ids, pool.map(lambda rid: status_pid(client, rid), ids), strict=True))


def both_workers_answer(server: Server) -> set[int]:
    """Warm up until both workers have answered (bounded)."""
    pids: set[int] = set()
    for round_ in range(20):
        pids.update(send_requests(server, f"warm{round_}", 16).values())
        if len(pids) == 2:
            return pids
    raise AssertionError(f"only {pids} answered 320 requests")


def read_lines(log_dir: Path, stem: str) -> list[dict[str, Any]]:
    """Every line of `stem`.log and its rotated, gzipped files; each must be one JSON object."""
    files = [*sorted(log_dir.glob(f"{stem}.*.gz")), log_dir / f"{stem}.log"]
    records = []
    for path in files:
        opener: Any = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise AssertionError(f"{path.name}:{number} is not JSON: {line!r}") from error
                assert isinstance(record, dict), f"{path.name}:{number}: {line!r}"
                records.append(record)
    return records


def access_lines(log_dir: Path, prefix: str) -> list[dict[str, Any]]:
    """The api.log access lines of requests whose id starts with `prefix-`."""
    return [
        record
        for record in read_lines(log_dir, "api")
        if "duration_ms" in record and str(record.get("request_id", "")).startswith(f"{prefix}-")
    ]


# --- several gunicorn workers ------------------------------------------------------------


def test_every_workers_access_line_reaches_api_log_once(tmp_path: Path) -> None:
    with gunicorn(tmp_path) as server:
        both_workers_answer(server)
        answered = send_requests(server, "count", 300)
        assert len(set(answered.values())) == 2, "the requests did not reach both workers"
        assert server.stop() == 0, server.tail()

    lines = access_lines(server.log_dir, "count")
    assert len(lines) == len(answered), f"{len(lines)} access lines for {len(answered)} requests"
    logged = {line["request_id"]: line["pid"] for line in lines}
    assert logged == answered  # each once, with the pid of the worker that answered it
    assert all(line["route"] == "/api/status" and line["status"] == 200 for line in lines)
    app_log = read_lines(server.log_dir, "app")
    assert any(r["msg"] == "Shutting down: Master" for r in app_log)  # the master's own lines
    stopped = {r["pid"] for r in app_log if r["msg"] == "Vektor Backend stopped"}
    assert set(answered.values()) <= stopped  # a worker's last lines, sent as it exits


@dataclass
class Traffic:
    """Requests from background threads until stopped; what answered, and when."""

    server: Server
    answers: list[tuple[float, int]] = field(default_factory=list)
    failures: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, index: int) -> None:
        """One thread's loop (bounded by `stop` and the client timeout)."""
        with client_for(self.server, timeout=5) as client:
            count = 0
            while not self.stop.is_set():
                count += 1
                try:
                    pid = status_pid(client, f"traffic{index}-{count}")
                    self.answers.append((time.monotonic(), pid))
                except (httpx.TransportError, AssertionError):
                    self.failures += 1

    def answered_since(self, moment: float, exclude: set[int]) -> set[int]:
        """Pids (not in `exclude`) that answered after `moment`."""
        return {pid for at, pid in list(self.answers) if at > moment and pid not in exclude}


def kill_one_worker(traffic: Traffic, killed: set[int]) -> None:
    """SIGKILL a worker that is answering; the other must go on, gunicorn must replace it."""
    wait_for(
        lambda: len(traffic.answered_since(time.monotonic() - 1, killed)) == 2,
        60,
        "both workers to answer",
    )
    victim = max(traffic.answered_since(time.monotonic() - 1, killed))
    os.kill(victim, signal.SIGKILL)
    killed.add(victim)
    at = time.monotonic()
    wait_for(
        lambda: bool(traffic.answered_since(at, killed)),
        10,
        f"the other worker to keep answering after killing {victim}",
    )
    wait_for(
        lambda: len(traffic.answered_since(at, killed)) == 2,
        60,
        f"gunicorn to replace worker {victim}",
    )


def test_a_killed_worker_never_freezes_the_others(tmp_path: Path) -> None:
    with gunicorn(tmp_path) as server:
        traffic = Traffic(server)
        threads = [threading.Thread(target=traffic.run, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        killed: set[int] = set()
        try:
            for _ in range(4):  # each kill may land while the victim is sending a line
                kill_one_worker(traffic, killed)
        finally:
            traffic.stop.set()
            for thread in threads:
                thread.join(timeout=15)
        assert server.stop() == 0, server.tail()

    errors = [r["msg"] for r in read_lines(server.log_dir, "error")]
    for victim in killed:  # the master kept logging after each kill
        assert f"Worker (pid:{victim}) was sent SIGKILL! Perhaps out of memory?" in errors
    assert read_lines(server.log_dir, "api")  # and every line of every file is whole JSON
    read_lines(server.log_dir, "app")


def test_rotation_by_one_writer_loses_no_line(tmp_path: Path) -> None:
    with gunicorn(tmp_path, LOG_ROTATION="20 KB") as server:
        both_workers_answer(server)
        answered = send_requests(server, "rotate", 400)
        assert len(set(answered.values())) == 2, "the requests did not reach both workers"
        assert server.stop() == 0, server.tail()

    rotated = sorted(p for p in server.log_dir.glob("api.*") if p.name != "api.log")
    assert len(rotated) >= 5, f"api.log did not rotate at 20 KB: {rotated}"
    assert all(path.name.endswith(".log.gz") for path in rotated), rotated
    lines = access_lines(server.log_dir, "rotate")  # every line of every file parses
    assert sorted(line["request_id"] for line in lines) == sorted(answered)
    assert {line["pid"] for line in lines} == set(answered.values())


KILL_WHILE_LOGGING = """
import os, select, signal, sys, time
from pathlib import Path
from loguru import logger
from app.core.config import Settings
from app.observability.logging import configure_logging, start_worker_relay, stop_worker_relay

configure_logging(Settings(_env_file=None, log_dir=Path(sys.argv[1]), log_level="INFO"))
start_worker_relay()
for round_ in range(int(sys.argv[2])):
    started, logging_ = os.pipe()
    pid = os.fork()
    if pid == 0:  # a worker that does nothing but log, until it is killed
        os.close(started)
        for n in range(10**9):
            logger.bind(channel="api").info("child {} line {}", round_, n)
            if n == 0:  # its first line is out: the master may kill it from now on
                os.write(logging_, b"x")
                os.close(logging_)
    os.close(logging_)
    # wait until the child logs (however loaded the machine), then kill it mid-stream
    select.select([started], [], [], 20)
    os.close(started)
    time.sleep(0.02 + 0.01 * (round_ % 5))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    logger.info("master alive after kill {}", round_)
stop_worker_relay()
"""


def test_killing_processes_in_the_middle_of_logging_blocks_no_one(tmp_path: Path) -> None:
    kills = 30
    run = subprocess.run(
        [sys.executable, "-c", KILL_WHILE_LOGGING, str(tmp_path), str(kills)],
        cwd=ROOT,
        capture_output=True,
        timeout=60,  # a lock left held by a killed child would hang the master here
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-3000:]
    app_log = read_lines(tmp_path, "app")  # every line whole, even from killed children
    alive = [r["msg"] for r in app_log if r["msg"].startswith("master alive")]
    assert alive == [f"master alive after kill {n}" for n in range(kills)]
    children = {r["pid"] for r in app_log if r["msg"].startswith("child")}
    assert len(children) >= kills // 2, "the children's lines did not reach the master"


# --- the relay in this process -----------------------------------------------------------


def captured_record(message: str, *, exception: bool = False) -> Any:
    """A real loguru record (through this process's patcher), for `render_line`."""
    records: list[Any] = []
    handler = logger.add(lambda m: records.append(m.record), filter=lambda r: "probe" in r["extra"])
    try:
        probe = logger.bind(probe=True)
        if exception:
            try:
                raise ValueError("went wrong")
            except ValueError:
                probe.exception(message)
        else:
            probe.info(message)
    finally:
        logger.remove(handler)
    return records[0]


def test_an_oversized_line_is_shortened_and_still_one_json_object() -> None:
    record = captured_record("x" * 300_000 + " the end", exception=True)
    line = render_line(record, limit=4000)
    assert len(line.encode()) <= 4000
    parsed = json.loads(line)
    assert "characters cut" in parsed["msg"]
    assert parsed["msg"].startswith("xxx") and parsed["msg"].endswith("the end")
    assert parsed["exception"].startswith("Traceback")
    assert "ValueError: went wrong" in parsed["exception"]  # the end of the traceback is kept


def test_lines_arrive_in_order_including_one_larger_than_a_datagram() -> None:
    received: list[RelayedLine] = []
    relay = LogRelay(emit=received.append)
    forwarder = relay.forwarder()
    big = "y" * (forwarder.max_bytes * 2)
    for n in range(2000):
        item = RelayedLine("INFO", 20, "app.api.test", "api", f"line {n}")
        forwarder.send(item, shrink=lambda _limit: "unused")
    forwarder.send(RelayedLine("ERROR", 40, "app.x", None, big), shrink=lambda limit: "z" * limit)
    assert forwarder.drain(timeout=10)
    relay.stop(timeout=10)
    assert [item.line for item in received[:2000]] == [f"line {n}" for n in range(2000)]
    assert received[0].channel == "api" and received[0].logger == "app.api.test"
    assert len(received) == 2001 and received[-1].line.startswith("zzz")
    assert forwarder.dropped == 0


def test_a_worker_whose_master_is_gone_does_not_wait(capfd: Any) -> None:
    receiver, sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    immediate = sender.dup()
    immediate.setblocking(False)
    sender.settimeout(5)
    receiver.close()  # the master died
    forwarder = Forwarder(sender, immediate, max_bytes=65_000)
    started = time.monotonic()
    for n in range(50):
        forwarder.send(RelayedLine("INFO", 20, "app", None, f"orphan {n}"), shrink=str)
    assert forwarder.drain(timeout=5)
    assert time.monotonic() - started < 2
    err = capfd.readouterr().err
    assert "orphan 0" in err and "orphan 49" in err  # written to stderr instead
    for sock in (sender, immediate):
        sock.close()
