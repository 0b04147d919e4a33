"""`DATA_DIR/spool/`: turn writes the database could not take, one durable file each.

A file is written to a temporary name, flushed and fsynced, then renamed into place, and the
directory is fsynced: after a crash a file is either whole or absent. Names sort in the
order the writes were made (`<time ns>-<counter>-<message id>-<kind>.json`), so replaying
them in name order keeps each message's begin → checkpoint → finish order. A replaying
process holds an exclusive `flock` on the file, so several workers starting together never
apply one twice; a file that cannot be applied (a bug, not an outage) moves to `failed/`.
Each file names the database it belongs to (a hash of DATABASE_URL without its password):
a process pointed at another database leaves it alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, BinaryIO, Literal

from pydantic import Field, TypeAdapter
from sqlalchemy import make_url

from app.db.session import sqlite_file
from app.repositories.turn_writes import TurnWrite

SUFFIX = ".json"
_counter = itertools.count()
_Tagged = Annotated[TurnWrite, Field(discriminator="kind")]


@dataclass(slots=True)
class SpoolDocument:
    """What one spool file holds: the write, and which database it belongs to."""

    write: _Tagged
    database: str = ""  # `database_key` of the DATABASE_URL
    format: Literal["vektor-turn-write"] = "vektor-turn-write"
    version: Literal[1] = 1


_DOCUMENT = TypeAdapter(SpoolDocument)


def encode(document: SpoolDocument) -> bytes:
    """A spool file's JSON."""
    return _DOCUMENT.dump_json(document)


def decode(raw: bytes) -> SpoolDocument:
    """A spool file's document (`ValueError` if it is not one)."""
    return _DOCUMENT.validate_json(raw)


def database_key(url: str) -> str:
    """A short stable name of a database: its URL without password (a SQLite file's
    absolute path), hashed."""
    path = sqlite_file(url)
    name = str(path.resolve()) if path else make_url(url).render_as_string(hide_password=True)
    return hashlib.sha256(name.encode()).hexdigest()[:16]


class Spool:
    """The spool directory of one data directory, for one database."""

    def __init__(self, directory: Path, *, database: str = "") -> None:
        self.directory = directory
        self.database = database
        self.failed = directory / "failed"

    def put(self, write: TurnWrite) -> Path:
        """Write one file durably (blocking: call from a thread where it matters)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{next(_counter):06d}-{write.message_id}-{write.kind}"
        final = self.directory / f"{name}{SUFFIX}"
        temp = self.directory / f".{name}.tmp"
        with open(temp, "wb") as handle:
            handle.write(encode(SpoolDocument(write=write, database=self.database)))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
        _fsync_dir(self.directory)
        return final

    def files(self) -> list[Path]:
        """The spooled writes, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    @contextlib.contextmanager
    def claim(self, path: Path) -> Iterator[BinaryIO | None]:
        """The open file, locked for this process; None if another process has it or it is
        gone (already replayed)."""
        try:
            handle = open(path, "rb")  # noqa: SIM115 (closed below, after the lock is released)
        except FileNotFoundError:
            yield None
            return
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
            try:
                same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False  # replayed and removed by the process that held the lock
            yield handle if same else None
        finally:
            handle.close()

    def remove(self, path: Path) -> None:
        """Forget a file whose write committed."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        _fsync_dir(self.directory)

    def quarantine(self, path: Path) -> Path:
        """Move a file that can never be applied out of the way, for an operator to read."""
        self.failed.mkdir(parents=True, exist_ok=True)
        target = self.failed / path.name
        os.replace(path, target)
        _fsync_dir(self.directory)
        return target


def _fsync_dir(directory: Path) -> None:
    """Make a rename or removal in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
