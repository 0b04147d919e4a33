"""gunicorn settings for `python3 main.py prod`: uvicorn workers, graceful shutdown, shared metrics.

The master, before forking any worker, (0) refuses several workers without `REDIS_URL` (also
when gunicorn is started directly, not through main.py), (1) gives Prometheus a clean
multiprocess directory (`PROMETHEUS_MULTIPROC_DIR`: the operator's, emptied, or a fresh
temporary one removed at exit) so `/metrics` adds up every worker, and (2) installs the loguru
file sinks and opens the log relay: each worker sends its rendered lines to the master over a
Unix datagram socket, so one process writes and rotates the files and a killed worker leaves
no lock behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

worker_class = "app.observability.worker.VektorWorker"
# answers may run SHUTDOWN_GRACE_SECONDS after SIGTERM, then are cancelled and saved; gunicorn
# must not kill the worker before that is done
_grace = float(os.environ.get("SHUTDOWN_GRACE_SECONDS", "30"))
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", str(int(_grace) + 30)))
timeout = 120
keepalive = 5
accesslog = None  # the app writes its own access line to api.log
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

_OWNED_METRICS_DIR = "VEKTOR_OWNED_METRICS_DIR"


def _prepare_metrics_dir() -> None:
    """Point every worker at an empty metrics directory (old samples would be added in)."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return
    created = tempfile.mkdtemp(prefix="vektor-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = created
    os.environ[_OWNED_METRICS_DIR] = created


def on_starting(server: Any) -> None:
    """In the master, before the workers fork: the Redis check, metrics directory, log sinks."""
    from app.core.config import check_workers, get_settings

    # a RuntimeError here makes gunicorn print "Error: <message>" and exit 1, no worker forked
    check_workers(server.cfg.workers, get_settings().redis_url)
    _prepare_metrics_dir()
    from app.observability.logging import configure_logging, start_worker_relay

    configure_logging(get_settings())
    start_worker_relay()


def child_exit(server: Any, worker: Any) -> None:
    """Drop an exited worker's live gauges; its counters stay in the totals."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """Write the lines the exited workers relayed; remove the metrics directory we created."""
    from app.observability.logging import stop_worker_relay

    stop_worker_relay()
    created = os.environ.get(_OWNED_METRICS_DIR)
    if created:
        shutil.rmtree(created, ignore_errors=True)
