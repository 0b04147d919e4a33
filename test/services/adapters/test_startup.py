"""Settings that shape adapters and fetches: the allow-list and the limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import ConfigError, Settings
from app.services.adapters import start_adapter_tools
from app.services.adapters.startup import fetch_limits, url_policy
from test.services.adapters.test_config import REPO_CONFIG


def settings(**values: object) -> Settings:
    """Settings from explicit values only (no .env)."""
    return Settings(_env_file=None, environment="test", **values)  # type: ignore[call-arg]


def test_the_allow_list_is_read_from_text() -> None:
    parsed = settings(url_allowlist="127.0.0.1:8080, *.corp.example ,10.0.0.0/8")
    assert parsed.url_allowlist == ["127.0.0.1:8080", "*.corp.example", "10.0.0.0/8"]
    assert len(url_policy(parsed).allow) == 3
    assert settings(url_allowlist='["api.internal"]').url_allowlist == ["api.internal"]
    assert settings(url_allowlist="").url_allowlist == []


def test_a_bad_allow_list_entry_stops_start_up() -> None:
    with pytest.raises(ConfigError, match=r"URL_ALLOWLIST: '10\.0\.0\.0/33' is not a valid"):
        url_policy(settings(url_allowlist="10.0.0.0/33"))


def test_limits_come_from_the_settings() -> None:
    limits = fetch_limits(
        settings(
            fetch_timeout_seconds=7,
            fetch_connect_timeout_seconds=2,
            fetch_max_bytes=4096,
            fetch_max_redirects=1,
        )
    )
    assert (limits.timeout_s, limits.connect_timeout_s, limits.max_bytes, limits.max_redirects) == (
        7,
        2,
        4096,
        1,
    )


async def test_start_up_with_the_shipped_config(tmp_path: Path) -> None:
    tools = await start_adapter_tools(settings(config_dir=REPO_CONFIG))
    try:
        assert tools.available(servers=None) == []  # the example is disabled
        assert tools.tools() == []
    finally:
        await tools.aclose()
    empty = await start_adapter_tools(settings(config_dir=tmp_path))
    await empty.aclose()
