"""The app starts on real migrations and answers its basic routes."""

from __future__ import annotations

import httpx


async def test_health_reports_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert response.headers["x-request-id"]


async def test_register_login_me(client: httpx.AsyncClient, alice: dict) -> None:
    response = await client.get("/users/me", headers=alice["headers"])
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    assert "password_hash" not in response.json()


async def test_first_start_creates_the_sqlite_directory(tmp_path, log_dir, config_dir) -> None:  # type: ignore[no-untyped-def]
    from asgi_lifespan import LifespanManager

    from app.main import create_app
    from test.support.apps import in_process_client, make_settings

    target = tmp_path / "fresh" / "data" / "vektor.db"
    application = create_app(
        make_settings(f"sqlite+aiosqlite:///{target}", log_dir, config_dir=config_dir)
    )
    async with LifespanManager(application), in_process_client(application) as client:
        assert (await client.get("/health")).json()["status"] == "ok"
    assert target.exists()
