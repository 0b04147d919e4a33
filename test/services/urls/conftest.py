"""Fixtures of the URL tests: the loopback service, the canary and the network jail."""

from __future__ import annotations

import pytest

from test.fakes.http_service import NetworkJail, canary, http_service, network_jail

__all__ = ["canary", "http_service", "network_jail"]


@pytest.fixture(autouse=True)
def _no_traffic_outside_loopback(network_jail: NetworkJail) -> None:
    """Every URL test runs in the jail."""
