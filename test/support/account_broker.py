"""The login endpoint schemathesis uses: it keeps the test accounts able to log in.

Schemathesis rightly renames the account it runs as (`PUT /users/me`), and could change its
password or delete it: all valid requests. Its own login would then fail for the rest of the
run. So it asks this broker for a token (a Web Fuzzing Commons `externalEndpointURL`): the
broker logs in through the app's `POST /auth/login`, and when that fails it puts the account
back as it was (username, email, password; created again when deleted) straight in the
database, and logs in again. Test harness only: never part of the app.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.core.security import PasswordHasher
from app.models import User

ROUNDS = 4  # bcrypt cost of the throwaway accounts


class AccountBroker:
    """Accounts `name → admin?` with one password, kept loggable on the app at `app_url`."""

    def __init__(
        self, *, app_url: str, database_url: str, password: str, accounts: dict[str, bool]
    ) -> None:
        self.app_url = app_url
        self.database_url = database_url
        self.password = password
        self.accounts = accounts
        self.restored: dict[str, int] = dict.fromkeys(accounts, 0)
        self._ids: dict[str, uuid.UUID] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def login_url(self, name: str) -> str:
        """Where schemathesis logs in as `name` (POST, answers the app's `TokenPair`)."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/login/{name}"

    def ensure_accounts(self) -> None:
        """Create or repair every account (before the run, then whenever a login fails)."""
        for name in self.accounts:
            asyncio.run(self._restore(name))

    def login(self, name: str) -> tuple[int, bytes]:
        """The app's answer to logging in as `name`, repairing the account once if needed."""
        status, body = self._app_login(name)
        # 401: renamed, new password or deleted; 403 `account_pending`: deactivated by an admin
        if status in (401, 403):
            with self._lock:  # one repair at a time; another thread may have done it already
                status, body = self._app_login(name)
                if status in (401, 403):
                    asyncio.run(self._restore(name))
                    self.restored[name] += 1
                    status, body = self._app_login(name)
        return status, body

    def _app_login(self, name: str) -> tuple[int, bytes]:
        data = json.dumps({"username": name, "password": self.password}).encode()
        request = urllib.request.Request(
            f"{self.app_url}/auth/login", data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    async def _restore(self, name: str) -> None:
        """Give `name` back its username, email and password, or create it again."""
        email = f"{name}@example.com"
        hashed = await PasswordHasher(rounds=ROUNDS).hash(self.password)
        engine = create_async_engine(self.database_url)
        try:
            async with async_sessionmaker(engine, expire_on_commit=False)() as session:
                user = await self._owned(session, name)
                squatters = or_(User.username == name, User.email == email)
                if user is not None:
                    squatters = squatters & (User.id != user.id)
                tag = uuid.uuid4().hex[:12]  # another account that took the name moves aside
                await session.execute(
                    update(User)
                    .where(squatters)
                    .values(username=f"x{tag}", email=f"{tag}@example.com")
                )
                if user is None:  # first run, or the account deleted itself
                    user = User(email=email, username=name, password_hash=hashed)
                    session.add(user)
                user.username, user.email, user.password_hash = name, email, hashed
                user.is_admin, user.is_active = self.accounts[name], True
                await session.commit()
                self._ids[name] = user.id
        finally:
            await engine.dispose()

    async def _owned(self, session: Any, name: str) -> User | None:
        """The account that was `name` before it renamed itself."""
        user_id = self._ids.get(name)
        return None if user_id is None else await session.get(User, user_id)

    def start(self) -> None:
        """Serve `POST /login/<name>` on a free loopback port (a daemon thread)."""
        broker = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                """Log in as the account named in the path."""
                name = self.path.rsplit("/", 1)[-1]
                status, body = broker.login(name) if name in broker.accounts else (404, b"{}")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: schemathesis prints what matters."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, name="account-broker", daemon=True
        ).start()

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
