"""Sync fixtures."""

from test.api.chat.helpers import stub_tools

__all__ = ["stub_tools"]
