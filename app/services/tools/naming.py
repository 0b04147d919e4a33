"""Tool names as the model sees them: `<server>__<tool>`, matching `^[a-zA-Z0-9_-]{1,64}$`."""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 64
SEPARATOR = "__"
VALID_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_-]+")


def sanitise(text: str) -> str:
    """Replace every run of characters outside `[a-zA-Z0-9_-]` with one underscore."""
    return _INVALID_CHARS.sub("_", text).strip("_") or "tool"


def qualified_name(server: str, tool: str) -> str:
    """`<server>__<tool>`, sanitised; long names keep a short hash so they stay distinct."""
    name = f"{sanitise(server)}{SEPARATOR}{sanitise(tool)}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha1(f"{server}\0{tool}".encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{name[: MAX_NAME - len(digest) - 1]}_{digest}"
