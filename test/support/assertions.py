"""Assertions on what a client sees, shared by the API tests."""

from __future__ import annotations

import httpx


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    """The documented error body, exactly `{"detail", "code"}`."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
