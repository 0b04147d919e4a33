"""A private `redis-server` on a free loopback port, started and stopped by the tests.

The suite never touches a Redis it did not start: the shared server on 6379 may hold
someone else's data, and flushing its databases (as earlier versions of the suite did)
would destroy it.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import time

from redis import Redis

from test.support.net import free_port

REDIS_SERVER = shutil.which("redis-server")
NO_PERSISTENCE = ["--save", "", "--appendonly", "no"]
SKIP_REASON = "redis-server is not installed"


class RedisProcess:
    """A throw-away redis-server on 127.0.0.1 that can be stopped and started again."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.mkdtemp(prefix="vektor-redis-")

    def url(self, db: int = 0) -> str:
        """Where it listens, for database `db`."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        """Launch it (no persistence) and wait until it answers."""
        if REDIS_SERVER is None:
            raise RuntimeError(SKIP_REASON)
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self._dir,
                *NO_PERSISTENCE,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if Redis.from_url(self.url(), socket_timeout=0.5).ping():
                    return
            except Exception:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """Terminate it and wait until it is gone."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            self.process = None

    def flush(self, db: int = 0) -> None:
        """Empty one database of this private server (never any other server's)."""
        Redis.from_url(self.url(db)).flushdb()


_shared: RedisProcess | None = None


def shared_redis() -> RedisProcess:
    """One private server for the whole test process (started on first use)."""
    global _shared
    if _shared is None:
        server = RedisProcess()
        server.start()
        atexit.register(server.stop)
        _shared = server
    return _shared


def private_redis_url(db: int) -> str:
    """Database `db` of the private server, flushed (the test is skipped without redis-server)."""
    import pytest

    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    server = shared_redis()
    server.flush(db)
    return server.url(db)
