"""Worker → master log relay under gunicorn: one writer per file, and a dead worker blocks no one.

The master opens a Unix datagram socket pair before forking. Every worker inherits the
sending end; its loguru sink hands each rendered line to `Forwarder.send`, which sends it as
one datagram without waiting (`MSG_DONTWAIT` semantics). Only when the master is behind and
the socket buffer is full does the line go to an in-process queue that a daemon thread sends
with a bounded wait, so the event loop never blocks. No lock is shared between processes: the
kernel queues a datagram whole or not at all, so a worker killed at any instant (OOM killer,
`kill -9`, gunicorn's timeout) leaves nothing held, and what it already sent is still written.
A master thread (`LogRelay`) receives the datagrams and re-emits them into the master's sinks,
so exactly one process writes and rotates each file.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace

STOP = b"\x00stop"  # the master sends it to itself: everything queued before it gets written
SEND_TIMEOUT_S = 10.0  # a master this far behind is stuck: the line goes to stderr instead
DRAIN_TIMEOUT_S = 5.0  # how long an exiting process waits for its queued lines to leave
QUEUE_LINES = 10_000  # per worker; past it lines are dropped and counted, never waited for
MAX_DATAGRAM = 256 * 1024  # larger lines are shortened by the worker (see `Forwarder.send`)
_SOCKET_BUFFER = 1024 * 1024


@dataclass(frozen=True)
class RelayedLine:
    """One line as a worker rendered (and redacted) it, with what the master routes it by."""

    level: str
    levelno: int
    logger: str
    channel: str | None
    line: str

    def encode(self) -> bytes:
        """A small JSON header, a newline, then the line itself."""
        head = json.dumps([self.level, self.levelno, self.logger, self.channel])
        return head.encode() + b"\n" + self.line.encode("utf-8", "replace")

    @classmethod
    def decode(cls, data: bytes) -> RelayedLine:
        """The inverse of `encode`."""
        head, _, line = data.partition(b"\n")
        level, levelno, name, channel = json.loads(head)
        return cls(
            level=str(level),
            levelno=int(levelno),
            logger=str(name),
            channel=None if channel is None else str(channel),
            line=line.decode("utf-8", "replace"),
        )


def _to_stderr(data: bytes) -> None:
    """Last resort when the master cannot take a line: the process's stderr."""
    with contextlib.suppress(OSError):
        view = memoryview(data)
        while view:
            view = view[os.write(2, view) :]


class Forwarder:
    """Worker side: queue lines without waiting and send them from a daemon thread."""

    def __init__(self, sock: socket.socket, immediate: socket.socket, max_bytes: int) -> None:
        self.pid = os.getpid()
        self.max_bytes = max_bytes
        self.dropped = 0
        self._reported = 0
        self._failed = False
        self._sock = sock  # with a timeout: for the thread
        self._immediate = immediate  # non-blocking: for the caller
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=QUEUE_LINES)
        self._thread = threading.Thread(
            target=self._send_forever, name="vektor-log-forwarder", daemon=True
        )
        self._thread.start()
        atexit.register(self.drain)

    def send(self, item: RelayedLine, shrink: Callable[[int], str]) -> None:
        """Queue one line; `shrink(limit)` re-renders it within `limit` bytes when too large."""
        data = item.encode()
        if len(data) > self.max_bytes:
            overhead = len(data) - len(item.line.encode("utf-8", "replace"))
            data = replace(item, line=shrink(self.max_bytes - overhead)).encode()
            if len(data) > self.max_bytes:
                self.dropped += 1
                return
        if self._queue.unfinished_tasks == 0:  # nothing waiting that this line would overtake
            try:
                self._immediate.send(data)
                return
            except OSError:  # buffer full, or the master is gone: the thread deals with it
                pass
        try:
            self._queue.put_nowait(data)
        except queue.Full:
            self.dropped += 1

    def drain(self, timeout: float = DRAIN_TIMEOUT_S) -> bool:
        """Wait, at most `timeout`, until every queued line has left (at exit, in tests)."""
        if os.getpid() != self.pid:
            return True
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout)

    def _send_forever(self) -> None:
        """The thread: send queued lines in order."""
        while True:
            data = self._queue.get()
            try:
                self._deliver(data)
            finally:
                self._queue.task_done()

    def _deliver(self, data: bytes) -> None:
        """Send one line with a bounded wait; stderr when the master cannot take it."""
        try:
            self._sock.send(data)
        except OSError as error:  # refused: the master is gone; timeout: it is stuck
            if not self._failed:
                self._failed = True
                _to_stderr(f"vektor log relay unavailable ({error!r}): lines follow\n".encode())
            _to_stderr(data.partition(b"\n")[2] + b"\n")
        if self.dropped > self._reported:
            count, self._reported = self.dropped - self._reported, self.dropped
            _to_stderr(f"vektor log relay: process {self.pid} dropped {count} lines\n".encode())


class LogRelay:
    """Master side: the socket pair (opened before forking) and the thread that re-emits."""

    def __init__(self, emit: Callable[[RelayedLine], None]) -> None:
        self.master_pid = os.getpid()
        self._emit = emit
        self._receiver, self._sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            self._sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        # the kernel refuses a datagram larger than the sending socket's buffer
        sndbuf = self._sender.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        self.max_bytes = min(MAX_DATAGRAM, sndbuf - 1024)
        self._sender.settimeout(SEND_TIMEOUT_S)
        self._immediate = self._sender.dup()
        self._immediate.setblocking(False)
        self._forwarder: Forwarder | None = None
        self._stopped = False
        self._thread = threading.Thread(
            target=self._receive_forever, name="vektor-log-relay", daemon=True
        )
        self._thread.start()
        atexit.register(self.stop)

    @property
    def in_worker(self) -> bool:
        """True in a process forked from the master."""
        return os.getpid() != self.master_pid

    def forwarder(self) -> Forwarder:
        """This process's forwarder (a process forked from a worker starts its own)."""
        if self._forwarder is None or self._forwarder.pid != os.getpid():
            self._forwarder = Forwarder(self._sender, self._immediate, self.max_bytes)
        return self._forwarder

    def close_receiver(self) -> None:
        """In a forked child: only the master holds the receiving end, so workers see it go."""
        self._receiver.close()

    def stop(self, timeout: float = DRAIN_TIMEOUT_S) -> None:
        """In the master at exit: write what the workers already sent, then end the thread."""
        if self.in_worker or self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(OSError):
            self._sender.send(STOP)
        self._thread.join(timeout)

    def _receive_forever(self) -> None:
        """The master thread: re-emit each datagram until STOP."""
        buffer = bytearray(self.max_bytes + 1)
        while True:
            try:
                size = self._receiver.recv_into(buffer)
            except OSError:
                return
            data = bytes(buffer[:size])
            if data == STOP:
                return
            try:
                self._emit(RelayedLine.decode(data))
            except Exception:  # a bad datagram or a failing sink must not end the relay
                traceback.print_exc(file=sys.stderr)
