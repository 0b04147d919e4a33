"""JSON a client sent, parsed only after a linear check of how deep it nests.

`json.loads` recurses once per nesting level: a body of 100,000 `[` would end in a
`RecursionError` (a 500) or, worse, blow the C stack. `nesting_path` finds the first
container that is too deep with regular expressions and one pass over the brackets (no
recursion, linear in the size even for hostile strings), so the parser only ever sees
documents of a bounded depth.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

# a string literal; an unterminated one runs to the end, so every scan stays linear
_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"?'
_STRINGS = re.compile(_STRING)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_TOKENS = re.compile(_STRING + rb"|[\[\]{},:]")
_DEPTH_STEP = [0] * 256
for _open in b"[{":
    _DEPTH_STEP[_open] = 1
for _close in b"]}":
    _DEPTH_STEP[_close] = -1
PATH_PARTS_SHOWN = 8


class JsonTooDeep(ValueError):
    """The document nests deeper than allowed; `path` names where."""

    def __init__(self, path: str, max_depth: int) -> None:
        self.path = path
        self.max_depth = max_depth
        super().__init__(f"{path}: nested deeper than {max_depth} levels")


def json_path(parts: Sequence[int | str]) -> str:
    """`["conversations", 2, "title"]` → `conversations[2].title`."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def _first_too_deep(raw: bytes, max_depth: int) -> int | None:
    """How many brackets come before the first one opening level `max_depth + 1`."""
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return None  # cannot nest that deep at all: the common case costs two counts
    brackets = _NOT_BRACKET.sub(b"", _STRINGS.sub(b"", raw))
    depths = accumulate(_DEPTH_STEP[byte] for byte in brackets)
    return next((index for index, depth in enumerate(depths) if depth > max_depth), None)


def _path_to_bracket(raw: bytes, bracket_index: int) -> list[int | str]:
    """The keys and indices that lead to the `bracket_index`-th bracket of `raw`."""
    frames: list[list[Any]] = []  # [is_array, current key or index]
    last_string = b'""'
    seen = 0
    for match in _TOKENS.finditer(raw):
        token = match.group()
        char = token[:1]
        if char == b'"':
            last_string = token
        elif char in (b"[", b"{", b"]", b"}"):
            if seen == bracket_index:
                break
            seen += 1
            if char in (b"[", b"{"):
                frames.append([char == b"[", 0 if char == b"[" else "?"])
            elif frames:
                frames.pop()
        elif frames and char == b":" and not frames[-1][0]:
            try:
                frames[-1][1] = str(json.loads(last_string))
            except ValueError:
                frames[-1][1] = "?"
        elif frames and char == b"," and frames[-1][0]:
            frames[-1][1] += 1
    return [frame[1] for frame in frames]


def nesting_path(raw: bytes, *, max_depth: int) -> str | None:
    """Where `raw` first nests deeper than `max_depth` (shortened), or None."""
    index = _first_too_deep(raw, max_depth)
    if index is None:
        return None
    parts = _path_to_bracket(raw, index)
    text = json_path(parts[:PATH_PARTS_SHOWN])
    return f"{text}…" if len(parts) > PATH_PARTS_SHOWN else text


def loads_bounded(raw: bytes, *, max_depth: int) -> Any:
    """`json.loads(raw)`, refusing (`JsonTooDeep`) a document nested deeper than `max_depth`."""
    path = nesting_path(raw, max_depth=max_depth)
    if path is not None:
        raise JsonTooDeep(path, max_depth)
    return json.loads(raw)
