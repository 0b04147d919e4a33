"""Create a user (an administrator with `--admin`) after bringing the schema to head.

    uv run python scripts/startup.py --user --email E --username U --password P [--admin]

The account goes through the same `AuthService` as `POST /auth/register`: the same
password rules, bcrypt cost and lower-casing. An existing email or username is reported
and nothing is changed. Exit codes: 0 created, 1 already exists or failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from anyio import to_thread  # noqa: E402
from loguru import logger  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from app.core.config import ConfigError, RegistrationMode, Settings  # noqa: E402
from app.core.errors import AppError  # noqa: E402
from app.core.ratelimit import RateLimiter  # noqa: E402
from app.core.security import PasswordHasher, TokenCodec  # noqa: E402
from app.db.migrate import upgrade_head  # noqa: E402
from app.db.session import create_engine, create_session_factory  # noqa: E402
from app.schemas.auth import RegisterRequest  # noqa: E402
from app.services.auth import AuthLimits, AuthService  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description="Create a Vektor user.")
    parser.add_argument("--user", action="store_true", required=True, help="create a user")
    parser.add_argument("--email", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True, help="8+ characters, at most 72 bytes")
    parser.add_argument("--full-name", default=None)
    parser.add_argument("--admin", action="store_true", help="make the user an administrator")
    return parser.parse_args(argv)


def describe(exc: ValidationError) -> str:
    """One line per invalid field, without echoing the values (the password is one)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}" for err in exc.errors()
    )


async def create_user(settings: Settings, data: RegisterRequest, *, admin: bool) -> str:
    """Register through `AuthService`, then grant admin; returns a one-line summary."""
    engine = create_engine(settings)  # also creates the directory of a SQLite file
    try:
        await to_thread.run_sync(upgrade_head, settings.database_url)
        factory = create_session_factory(engine)
        tokens = TokenCodec(
            key=settings.signing_key(),
            access_ttl=timedelta(minutes=settings.access_token_expire_minutes),
            refresh_ttl=timedelta(days=settings.refresh_token_expire_days),
        )
        hasher = PasswordHasher(rounds=settings.bcrypt_rounds)
        async with factory() as session:
            # an operator's command, not a client: no rate limit, and whatever REGISTRATION_MODE
            # says (closed or approval), the account is created and active
            auth = AuthService(
                session=session,
                hasher=hasher,
                tokens=tokens,
                limiter=RateLimiter(redis_url=None, enabled=False),
                limits=AuthLimits.from_settings(settings),
                registration=RegistrationMode.open,
            )
            user = await auth.register(data=data, ip="localhost")
            if admin:
                user.is_admin = True
                await session.commit()
            role = "admin" if user.is_admin else "user"
            return f"created {role} {user.username} <{user.email}> id={user.id}"
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """Validate, migrate, create; print what happened and exit non-zero on any failure."""
    args = parse_args(argv)
    logger.remove()  # the service logs to stderr by default; this script prints its own lines
    logger.add(sys.stderr, level="WARNING", format="{level}: {message}")
    try:
        data = RegisterRequest(
            email=args.email,
            username=args.username,
            password=args.password,
            full_name=args.full_name,
        )
    except ValidationError as exc:
        print(f"error: invalid user: {describe(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = Settings()
    except (ConfigError, ValidationError) as exc:
        print(f"error: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        print(asyncio.run(create_user(settings, data, admin=args.admin)))
    except AppError as exc:  # email_taken / username_taken
        print(f"error: {exc.detail} ({exc.code}); nothing was changed", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # database unreachable, migration failed, ...
        print(f"error: could not create the user: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
