"""Usage fixtures: the emptied fake upstream (as the chat tests have it)."""

from test.api.chat.helpers import upstream

__all__ = ["upstream"]
