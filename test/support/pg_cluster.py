"""A private PostgreSQL cluster the tests start, stop, freeze and restart themselves.

Outage tests must never touch the shared server on 5432: they stop the postmaster
(connection refused) or freeze it with SIGSTOP (connections hang). The cluster runs as the
`postgres` user (PostgreSQL refuses to run as root) in a temp directory that user owns,
on a free loopback port, with trust authentication and no fsync (it is thrown away).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bin_dir() -> Path | None:
    """The newest installed PostgreSQL server binaries."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


BIN_DIR = _bin_dir()


def skip_reason() -> str | None:
    """Why a private cluster cannot run here (None: it can)."""
    if BIN_DIR is None or not (BIN_DIR / "initdb").exists():
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no `postgres` user to run a private cluster as"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "postgres":
        return "a private cluster needs root (to run it as `postgres`) or the `postgres` user"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    """One throw-away cluster: `start`, `stop` (refused), `freeze`/`thaw` (hangs)."""

    def __init__(self) -> None:
        assert BIN_DIR is not None
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="vektor-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        user = pwd.getpwnam("postgres")
        os.chown(self.root, user.pw_uid, user.pw_gid)
        self._frozen: list[int] = []
        self._run(
            BIN_DIR / "initdb",
            "-D",
            self.data,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def _run(self, *args: object) -> None:
        command = [str(a) for a in args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.root, timeout=120)

    def url(self, database: str = "postgres") -> str:
        """An asyncpg URL of a database on this cluster."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the postmaster on its port and wait until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c full_page_writes=off -c max_connections=100"
        )
        assert BIN_DIR is not None
        self._run(BIN_DIR / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop it: new connections are refused, open ones are closed."""
        self.thaw()
        assert BIN_DIR is not None
        self._run(BIN_DIR / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def running(self) -> bool:
        """Whether the postmaster is up."""
        return self.postmaster_pid() is not None

    def postmaster_pid(self) -> int | None:
        """The postmaster's pid, from its pid file."""
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, 0)
            return pid
        return None

    def _processes(self) -> list[int]:
        """The postmaster and every backend it forked."""
        root = self.postmaster_pid()
        if root is None:
            return []
        pids = [root]
        for stat in glob.glob("/proc/[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == root:
                    pids.append(int(Path(stat).parent.name))
        return pids

    def freeze(self) -> None:
        """SIGSTOP the postmaster and its children: connections and queries hang."""
        for pid in self._processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                self._frozen.append(pid)

    def thaw(self) -> None:
        """SIGCONT whatever `freeze` stopped."""
        while self._frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._frozen.pop(), signal.SIGCONT)

    def create_database(self) -> str:
        """A new empty database; its asyncpg URL."""
        name = f"vektor_{uuid.uuid4().hex[:10]}"
        assert BIN_DIR is not None
        self._run(BIN_DIR / "createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", name)
        return self.url(name)

    def destroy(self) -> None:
        """Stop it (if running) and delete its files."""
        self.thaw()
        if self.running():
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_cluster() -> Iterator[PgCluster]:
    """A started cluster, destroyed afterwards (skips the test where none can run)."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def wait_until(predicate: object, timeout: float, interval: float = 0.1) -> bool:
    """Poll a callable until it returns truthy or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(interval)
    return False
