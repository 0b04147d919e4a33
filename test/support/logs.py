"""The app's log files as a test reads them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from loguru import logger

LOG_FILES = ("app.log", "api.log", "error.log")


async def read_logs(log_dir: Path, *, must_exist: bool = False) -> dict[str, str]:
    """Wait for the enqueued sinks to drain, then read the three files (a missing one is ""
    unless `must_exist`, then it fails the test)."""
    await asyncio.to_thread(logger.complete)
    return {
        name: (log_dir / name).read_text(encoding="utf-8")
        if must_exist or (log_dir / name).exists()
        else ""
        for name in LOG_FILES
    }
