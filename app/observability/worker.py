"""The gunicorn worker class: uvicorn with a bounded graceful shutdown.

On SIGTERM uvicorn stops accepting connections and waits for open responses. Streams last
as long as their answers, so the wait is bounded by `SHUTDOWN_GRACE_SECONDS`; then the
remaining responses are cancelled, the lifespan cancels the answers still running, and each
saves what it generated (status `cancelled`).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from app.core.config import WS_SERVER_OPTIONS

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from uvicorn.workers import UvicornWorker


def shutdown_grace_seconds() -> float:
    """How long running answers may finish after SIGTERM (env `SHUTDOWN_GRACE_SECONDS`)."""
    return float(os.environ.get("SHUTDOWN_GRACE_SECONDS", "30"))


class VektorWorker(UvicornWorker):
    """UvicornWorker with proxy headers and a graceful-shutdown limit."""

    CONFIG_KWARGS: dict[str, Any] = {
        **UvicornWorker.CONFIG_KWARGS,
        "proxy_headers": True,
        "timeout_graceful_shutdown": shutdown_grace_seconds(),
        **WS_SERVER_OPTIONS,
    }
