"""Processes that start at once (gunicorn workers on a fresh database) migrate in turn."""

from __future__ import annotations

import subprocess
import sys

from test.api.sync.test_migration import scratch_url  # noqa: F401  (the fixture)

_MIGRATE = "import sys; from app.db.migrate import upgrade_head; upgrade_head(sys.argv[1])"


def test_four_processes_migrating_one_fresh_database_all_succeed(
    scratch_url: str,  # noqa: F811
) -> None:
    """Two workers used to race: one failed with `table sync_tombstones already exists`."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE, scratch_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
