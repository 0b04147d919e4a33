"""Chat fixtures."""

from test.api.chat.helpers import instance_paths, stub_tools, upstream

__all__ = ["instance_paths", "stub_tools", "upstream"]
