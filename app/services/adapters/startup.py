"""Create the adapters' tool source from the settings (called by the lifespan)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from loguru import logger

from app.core.config import ConfigError, Settings
from app.services.adapters.executor import AdapterTools
from app.services.adapters.loader import load_adapters
from app.services.urls import FetchLimits, Resolver, SafeFetcher, UrlGuard, UrlPolicy


def url_policy(settings: Settings) -> UrlPolicy:
    """The operator's allow-list; a bad entry stops start-up with a message naming it."""
    try:
        return UrlPolicy.from_entries(settings.url_allowlist)
    except ValueError as exc:
        raise ConfigError(f"URL_ALLOWLIST: {exc}") from None


def fetch_limits(settings: Settings) -> FetchLimits:
    """The default time, size and redirect limits of outbound fetches."""
    return FetchLimits(
        timeout_s=settings.fetch_timeout_seconds,
        connect_timeout_s=settings.fetch_connect_timeout_seconds,
        max_bytes=settings.fetch_max_bytes,
        max_redirects=settings.fetch_max_redirects,
    )


async def start_adapter_tools(
    settings: Settings,
    *,
    config_dir: Path | None = None,
    resolver: Resolver | None = None,
    environ: Mapping[str, str] | None = None,
) -> AdapterTools:
    """Validate `CONFIG_DIR/app/*.json` and open the guarded client (closed again on failure)."""
    guard = UrlGuard(policy=url_policy(settings), resolver=resolver)
    fetcher = SafeFetcher(guard=guard, limits=fetch_limits(settings))
    try:
        adapters = await load_adapters(config_dir or settings.config_dir, fetcher=fetcher)
    except BaseException:
        await fetcher.aclose()
        raise
    tools = AdapterTools(adapters=adapters, fetcher=fetcher, environ=environ)
    if adapters:
        logger.info(
            "Loaded {} app adapters ({} enabled, {} operations)",
            len(adapters),
            sum(1 for a in adapters if a.config.enabled),
            len(tools.tools()),
        )
    return tools
