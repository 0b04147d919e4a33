"""Real MCP servers on loopback for the pool tests: processes we start, kill, hang and restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from app.services.mcp import McpPool, load_mcp_config
from test.support.net import free_port

TEST_SERVER = Path(__file__).resolve().parents[2] / "fakes" / "mcp_test_server.py"
FAST = {"timeout_s": 5, "connect_timeout_s": 2, "health_interval_s": 0.5, "breaker_failures": 2}


def stdio_command(name: str = "S") -> dict[str, Any]:
    """Config fields that run the test server over stdio (fast probes, slow-start tolerant)."""
    return {
        "transport": "stdio",
        "command": sys.executable,
        "args": [str(TEST_SERVER), "--transport", "stdio", "--name", name],
        **FAST,
        "connect_timeout_s": 20,  # a Python process start on a busy 2-core machine
    }


class ServerProcess:
    """One test-server replica in a subprocess, on a fixed loopback port."""

    def __init__(self, name: str, *, transport: str = "streamable-http") -> None:
        self.name = name
        self.transport = transport
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        path = "/sse" if transport == "sse" else "/mcp"
        self.url = f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        """Start the process and wait until the port accepts connections."""
        self.proc = subprocess.Popen(
            [
                *(sys.executable, str(TEST_SERVER), "--transport", self.transport),
                *("--port", str(self.port), "--name", self.name),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"test server {self.name} did not start")

    def kill(self) -> None:
        """SIGKILL: the replica dies without a goodbye."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the replica hangs (the kernel still accepts connections)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def ensure_running(self) -> None:
        """Restart if killed, resume if paused."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        else:
            self.resume()


@pytest.fixture(scope="module")
def replicas() -> Iterator[list[ServerProcess]]:
    """Two streamable-HTTP replicas, A and B, shared by a test module."""
    pair = [ServerProcess("A"), ServerProcess("B")]
    for server in pair:
        server.start()
    yield pair
    for server in pair:
        if server.proc is not None:
            server.resume()
        server.kill()


@pytest.fixture
def healthy_replicas(replicas: list[ServerProcess]) -> list[ServerProcess]:
    """The pair, both running (a previous test may have killed or paused one)."""
    for server in replicas:
        server.ensure_running()
    return replicas


PoolFactory = Callable[..., Awaitable[McpPool]]


@pytest.fixture
async def make_pool(tmp_path: Path) -> AsyncIterator[PoolFactory]:
    """Build pools from a `servers` mapping written to a real mcp_servers.json."""
    pools: list[McpPool] = []

    async def factory(servers: dict[str, Any], *, ready: bool = True) -> McpPool:
        directory = tmp_path / f"config{len(pools)}"
        directory.mkdir()
        (directory / "mcp_servers.json").write_text(json.dumps({"servers": servers}))
        pool = McpPool(load_mcp_config(directory))
        pools.append(pool)
        await pool.start()
        if ready:
            assert await pool.wait_until_ready(30), pool.status()
        return pool

    yield factory
    for pool in pools:
        await pool.aclose()


def endpoint(pool: McpPool, server: str, target: str) -> dict[str, Any]:
    """The status item of one replica."""
    item = next(s for s in pool.status() if s["name"] == server)
    return next(e for e in item["endpoints"] if e["target"] == target)


def stdio_children(marker: str) -> list[psutil.Process]:
    """Our child processes whose command line contains `marker` (zombies included)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE or marker in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found
