"""JSON from clients: the nesting depth is checked before parsing, in linear time."""

from __future__ import annotations

import json

import pytest

from app.core.json_input import JsonTooDeep, loads_bounded, nesting_path


def test_a_document_within_the_limit_parses() -> None:
    doc = {"a": [{"b": [1, 2, {"c": "[[[[{{{{"}]}], "d": "x\\"}
    raw = json.dumps(doc).encode()
    assert nesting_path(raw, max_depth=5) is None  # brackets inside strings do not count
    assert loads_bounded(raw, max_depth=5) == doc


def test_the_first_container_too_deep_is_named_by_its_path() -> None:
    raw = b'{"x": 1, "user": {"name": "a", "list": [0, 1, [[[[]]]]]}}'
    assert nesting_path(raw, max_depth=4) == "user.list[2][0]"
    with pytest.raises(JsonTooDeep) as error:
        loads_bounded(raw, max_depth=4)
    assert str(error.value) == "user.list[2][0]: nested deeper than 4 levels"


def test_a_hundred_thousand_levels_are_refused_without_recursion() -> None:
    raw = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(JsonTooDeep) as error:
        loads_bounded(raw, max_depth=100)
    assert error.value.path.startswith("a[0][0]") and error.value.path.endswith("…")


def test_hostile_strings_keep_the_scan_linear() -> None:
    # unterminated strings full of escaped quotes: a naive string pattern would restart at
    # every quote and rescan to the end (quadratic in the size)
    raw = b"[" * 50 + b'"' + b'\\"' * 500_000
    assert nesting_path(raw, max_depth=10) == "[0][0][0][0][0][0][0][0]…"
    assert nesting_path(b'["' + b'\\"' * 500_000, max_depth=10) is None


def test_the_pre_scan_and_the_tree_walk_agree_on_depth() -> None:
    from app.core.json_input import json_path
    from app.schemas.common import find_json_problem

    raw = b'{"x": 1, "user": {"name": "a", "list": [0, 1, [[[[]]]]]}}'  # 7 levels
    for limit in range(1, 9):
        problem = find_json_problem(json.loads(raw), max_depth=limit)
        walked = None if problem is None else json_path(problem[0])
        assert nesting_path(raw, max_depth=limit) == walked, limit
    assert nesting_path(raw, max_depth=7) is None
