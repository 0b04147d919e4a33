"""Entry point: `python3 main.py` (development, uvicorn) or `python3 main.py prod` (gunicorn)."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse the mode and run the server."""
    parser = argparse.ArgumentParser(description="Run Vektor Backend")
    parser.add_argument("mode", nargs="?", choices=["dev", "prod"], default="dev")
    parser.add_argument("--reload", action="store_true", help="dev: restart on code changes")
    parser.add_argument("--host", help="override HOST")
    parser.add_argument("--port", type=int, help="override PORT")
    parser.add_argument("--workers", type=int, help="prod: override WORKERS")
    args = parser.parse_args(argv)

    from app.core.config import WS_SERVER_OPTIONS, ConfigError, check_workers, get_settings

    try:
        settings = get_settings()
        workers = args.workers or settings.workers
        if args.mode == "prod":
            check_workers(workers, settings.redis_url)
    except ConfigError as exc:  # say what to fix, without a traceback
        print(f"Vektor Backend cannot start: {exc}", file=sys.stderr)
        return 1
    host = args.host or settings.host
    port = args.port or settings.port
    if args.mode == "dev":
        import uvicorn

        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            reload=args.reload,
            log_config=None,
            proxy_headers=True,
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,  # type: ignore[arg-type]
            **WS_SERVER_OPTIONS,  # type: ignore[arg-type]
        )
        return 0
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "app.main:create_app()",
        "--config",
        "gunicorn.conf.py",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
    ]
    os.execv(sys.executable, command)  # noqa: S606 (replace this process with gunicorn)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
