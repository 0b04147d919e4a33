"""Response shaping: JSON pointers and (dotted) field selection."""

from __future__ import annotations

import pytest

from app.services.adapters.operation import _pointer, _select

DOC = {"a/b": {"~k": [10, 20]}, "items": [{"id": 1, "owner": {"login": "x", "id": 9}}, 3]}


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [("", DOC), ("/a~1b/~0k/1", 20), ("/items/0/owner/login", "x")],
)
def test_pointer(pointer: str, expected: object) -> None:
    assert _pointer(DOC, pointer) == expected


@pytest.mark.parametrize("pointer", ["/nope", "/items/5", "/items/x", "/a~1b/~0k/1/deeper"])
def test_pointer_to_nothing(pointer: str) -> None:
    with pytest.raises(KeyError):
        _pointer(DOC, pointer)


def test_fields_keep_nested_paths_and_skip_missing_ones() -> None:
    picked = _select(DOC["items"], ["id", "owner.login", "owner.nope.deeper", "nope"])
    assert picked == [{"id": 1, "owner": {"login": "x"}}, 3]
