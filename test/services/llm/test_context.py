"""Fitting a conversation into a context window."""

from __future__ import annotations

from app.services.llm import ChatMessage, ToolCallRequest, estimate_tokens, fit_to_context


def _msg(role: str, text: str, **extra: object) -> ChatMessage:
    return ChatMessage(role=role, content=text, **extra)  # type: ignore[arg-type]


def _turns(count: int, size: int = 400) -> list[ChatMessage]:
    """`count` user/assistant pairs of about `size` characters each."""
    out = []
    for i in range(count):
        out += [_msg("user", f"q{i} " + "x" * size), _msg("assistant", f"a{i} " + "y" * size)]
    return out


def test_everything_is_kept_when_it_fits() -> None:
    messages = [_msg("system", "be nice"), *_turns(3), _msg("user", "now?")]
    assert fit_to_context(messages, context_window=10_000, reserve_output=1000) == messages


def test_oldest_history_goes_first_system_and_newest_stay() -> None:
    system = _msg("system", "be nice")
    history = _turns(10)  # ~104 tokens per message
    last = _msg("user", "the question")
    kept = fit_to_context([system, *history, last], context_window=1000, reserve_output=500)
    assert kept[0] is system and kept[-1] is last
    assert kept[1:-1] == history[-len(kept) + 2 :]  # a suffix of the history
    assert 2 <= len(kept) - 2 < len(history)
    assert sum(estimate_tokens(m) for m in kept) <= 500
    assert kept[1].role == "user"  # never starts mid-exchange


def test_current_turn_is_kept_even_over_budget() -> None:
    big = _msg("user", "z" * 10_000)
    kept = fit_to_context(
        [_msg("system", "s"), *_turns(2), big], context_window=100, reserve_output=50
    )
    assert [m.role for m in kept] == ["system", "user"] and kept[-1] is big


def test_tool_call_and_its_results_stay_together() -> None:
    call = ToolCallRequest("c1", "t__x", {"q": "w" * 300})
    exchange = [
        _msg("user", "look it up"),
        _msg("assistant", "", tool_calls=[call]),
        _msg("tool", "r" * 300, tool_call_id="c1"),
        _msg("assistant", "done"),
    ]
    last = _msg("user", "thanks")
    outcomes = set()
    for window in range(20, 700, 10):
        kept = fit_to_context([*exchange, last], context_window=window, reserve_output=0)
        has_call = any(m.tool_calls for m in kept)
        has_result = any(m.role == "tool" for m in kept)
        assert has_call == has_result  # never one without the other
        assert kept[0].role == "user" and kept[-1] is last
        outcomes.add(len(kept))
    assert outcomes == {1, 5}  # either the whole exchange or none of it


def test_in_progress_tool_turn_is_kept_whole() -> None:
    call = ToolCallRequest("c1", "t__x", {})
    current = [
        _msg("user", "time?"),
        _msg("assistant", "", tool_calls=[call]),
        _msg("tool", "12:00", tool_call_id="c1"),
    ]
    kept = fit_to_context([*_turns(20), *current], context_window=50, reserve_output=10)
    assert kept == current
