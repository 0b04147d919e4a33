"""Chat fixtures."""

from test.api.chat.helpers import stub_tools, upstream

__all__ = ["stub_tools", "upstream"]
