"""Create or upgrade the database schema with Alembic (`upgrade head`); safe to run again.

    uv run python scripts/init_db.py

Reads DATABASE_URL like the app does (environment, then `.env`). Run it as a release step
when DB_AUTO_MIGRATE=false (several replicas must not migrate at the same time).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy.engine import make_url  # noqa: E402

from app.core.config import ConfigError, Settings  # noqa: E402
from app.db.migrate import upgrade_head  # noqa: E402


def sqlite_parent(url: str) -> Path | None:
    """The directory a SQLite file lives in (created if missing), or None."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database)).parent


def main() -> int:
    """Run the migrations; exit 1 with the reason when the database cannot be reached."""
    try:
        settings = Settings()
    except (ConfigError, ValueError) as exc:
        print(f"error: invalid configuration: {exc}", file=sys.stderr)
        return 1
    safe_url = make_url(settings.database_url).render_as_string(hide_password=True)
    parent = sqlite_parent(settings.database_url)
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    try:
        upgrade_head(settings.database_url)
    except Exception as exc:  # report, don't dump a traceback with the URL in it
        print(f"error: migrating {safe_url} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"database schema is at head: {safe_url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
