"""Text no database can store: U+0000 (PostgreSQL text refuses it) and unpaired surrogates.

An unpaired surrogate (`"\\ud800"` in JSON) cannot be encoded as UTF-8, so neither a database
nor a JSON response can carry it: one stored in a JSON column breaks every later read of it.
Input from clients is refused (`app.schemas.common.Text`); text that arrives from upstreams
(model output, tool results) is made storable instead, so an answer is never lost to it.
"""

from __future__ import annotations

import math
import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def unstorable(text: str) -> bool:
    """True when no database (and no UTF-8 response) can hold `text`."""
    return _UNSTORABLE.search(text) is not None


def storable(text: str) -> str:
    """`text` without U+0000, unpaired surrogates replaced by U+FFFD."""
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else REPLACEMENT, text)


def _leaf(value: Any) -> Any:
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN/Infinity: not JSON, no JSON column or response takes them
    return value


def storable_tree(value: Any) -> Any:
    """A copy of a decoded JSON value: strings (keys too) `storable`, NaN/Infinity null.

    Iterative: a deeply nested value from an upstream cannot exhaust the stack."""
    if not isinstance(value, dict | list):
        return _leaf(value)
    holder: list[Any] = [None]
    pending: list[tuple[Any, Any, Any]] = [(value, holder, 0)]  # (source, parent, slot)
    while pending:
        source, parent, slot = pending.pop()
        copy: Any = {} if isinstance(source, dict) else [None] * len(source)
        parent[slot] = copy
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            key = _leaf(key)
            if isinstance(item, dict | list):
                copy[key] = None
                pending.append((item, copy, key))
            else:
                copy[key] = _leaf(item)
    return holder[0]
