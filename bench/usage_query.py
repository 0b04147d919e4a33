"""Usage aggregates on 1,000,000 answers (PostgreSQL): p99 of one user's month and of the
whole instance's month, through the app's own repository (issue 14).

    uv run python bench/usage_query.py [--postgres URL] [--answers 1000000] [--users 1000]

A scratch database is created next to URL, migrated, filled with `generate_series` (each
answer has a user message before it, as in real conversations: 2 million rows), analysed,
measured and dropped. The answers are spread evenly over the last 30 days and "a month" is
the last 30 days: every answer is in the month measured (the strict reading of the target).
Writes bench/results/usage_query.json.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from alembic import command
from app.db.migrate import alembic_config
from app.repositories.usage import UsageRepository
from bench.common import fresh_postgres_database, git_commit, summary, write_result

FILL = """
INSERT INTO users (id, email, username, password_hash, is_admin, is_active,
                   password_changed_at, created_at, updated_at)
SELECT md5('u' || g)::uuid, 'u' || g || '@example.com', 'u' || g, 'x', false, true,
       now(), now(), now()
FROM generate_series(1, :users) g;
INSERT INTO conversations (id, user_id, pinned, archived, message_count, created_at, updated_at)
SELECT md5('c' || g)::uuid, md5('u' || g)::uuid, false, false, 0, now(), now()
FROM generate_series(1, :users) g;
INSERT INTO messages (id, conversation_id, user_id, role, content, status, model,
                      usage, input_tokens, output_tokens, cached_input_tokens, cost_usd,
                      created_at, updated_at)
SELECT gen_random_uuid(), md5('c' || u)::uuid, md5('u' || u)::uuid,
       CASE WHEN q THEN 'user' ELSE 'assistant' END, 'x', 'complete',
       CASE WHEN q THEN NULL
            ELSE (ARRAY['gpt-4o-mini', 'gpt-4o', 'claude-haiku', 'claude-sonnet'])[1 + g % 4] END,
       CASE WHEN q THEN NULL
            ELSE json_build_object('input_tokens', 800, 'output_tokens', 300) END,
       CASE WHEN q THEN NULL ELSE 500 + g % 1000 END,
       CASE WHEN q THEN NULL ELSE 100 + g % 400 END,
       CASE WHEN q THEN NULL ELSE g % 200 END,
       CASE WHEN q THEN NULL ELSE (g % 1000) / 100000.0 END,
       now() - (g::bigint * 2591999 / :answers) * interval '1 second', now()
FROM (SELECT g, g % :users + 1 AS u, s = 0 AS q
      FROM generate_series(1, :answers) g, generate_series(0, 1) s) rows;
"""


async def fill(url: str, *, users: int, answers: int) -> float:
    """Insert the rows; seconds taken."""
    engine = create_async_engine(url)
    started = time.perf_counter()
    async with engine.begin() as conn:
        for statement in filter(str.strip, FILL.split(";")):
            await conn.execute(text(statement), {"users": users, "answers": answers})
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE messages"))
    await engine.dispose()
    return time.perf_counter() - started


async def measure(url: str, *, users: int, user_runs: int, instance_runs: int) -> dict[str, object]:
    """Timings (ms) of the report queries, each run through the repository."""
    engine = create_async_engine(url, pool_size=2)
    now = datetime.now(UTC)
    start, end = now - timedelta(days=30), now + timedelta(days=1)
    timings: dict[str, list[float]] = {}
    rng = random.Random(14)

    async def timed(name: str, run: object) -> None:
        async with AsyncSession(engine) as session:
            repo = UsageRepository(session)
            began = time.perf_counter()
            await run(repo)  # type: ignore[operator]
            timings.setdefault(name, []).append((time.perf_counter() - began) * 1000)

    for _ in range(user_runs):
        uid = uuid.UUID(
            hex=__import__("hashlib").md5(f"u{rng.randint(1, users)}".encode()).hexdigest()
        )
        await timed(
            "user_month_by_day",
            lambda r, u=uid: r.for_user(user_id=u, start=start, end=end, group_by="day"),
        )
        await timed(
            "user_month_by_model",
            lambda r, u=uid: r.for_user(user_id=u, start=start, end=end, group_by="model"),
        )
    for _ in range(instance_runs):
        for group in ("model", "day", "user"):
            await timed(
                f"instance_month_by_{group}",
                lambda r, g=group: r.for_instance(start=start, end=end, group_by=g),
            )
    await engine.dispose()
    return {name: summary(values) for name, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--answers", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--user-runs", type=int, default=200)
    parser.add_argument("--instance-runs", type=int, default=20)
    args = parser.parse_args()
    url, drop = fresh_postgres_database(args.postgres)
    try:
        command.upgrade(alembic_config(url), "head")
        seconds = asyncio.run(fill(url, users=args.users, answers=args.answers))
        print(f"filled {args.answers:,} answers ({2 * args.answers:,} messages) in {seconds:.0f} s")
        results = asyncio.run(
            measure(
                url, users=args.users, user_runs=args.user_runs, instance_runs=args.instance_runs
            )
        )
    finally:
        drop()
    targets = {"user": 50.0, "instance": 500.0}
    print(f"{'query':28} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'target':>7}")
    for name, s in results.items():
        target = targets["user" if name.startswith("user") else "instance"]
        print(f"{name:28} {s['n']:>4} {s['p50']:>8} {s['p99']:>8} {target:>7}")  # type: ignore[index]
    write_result(
        "usage_query",
        {
            "commit": git_commit(),
            "answers": args.answers,
            "users": args.users,
            "fill_seconds": round(seconds, 1),
            "results": results,
            "targets_ms": targets,
        },
    )


if __name__ == "__main__":
    main()
