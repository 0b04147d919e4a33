"""Assertions on what a client sees, shared by the API tests."""

from __future__ import annotations

from typing import Any

import httpx


def assert_openai_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """OpenAI's error body on `/v1`: exactly `{"error": {message, type, code, param}}`."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "code", "param"}, error
    assert error["code"] == code and isinstance(error["message"], str) and error["message"]
    return error


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    """The documented error body, exactly `{"detail", "code"}`."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
