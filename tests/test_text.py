"""The text helpers every view shares (llmtaskgraph.text): one rule each for cutting a text and
showing a number, whichever view shows it."""

from __future__ import annotations

import pytest

import llmtaskgraph.cli
import llmtaskgraph.run.progress
import llmtaskgraph.trace.diff
import llmtaskgraph.trace.summary
import llmtaskgraph.views.render
import llmtaskgraph.views.report
from llmtaskgraph import text
from llmtaskgraph.text import clip, count_text, seconds_text, shorten, terminal_safe


def test_all_is_complete_and_sorted() -> None:
    public = {name for name, value in vars(text).items() if callable(value) and not name.startswith("_")
              and getattr(value, "__module__", None) == text.__name__}
    assert set(text.__all__) == public
    assert text.__all__ == sorted(text.__all__)


@pytest.mark.parametrize("module", [
    llmtaskgraph.cli, llmtaskgraph.run.progress, llmtaskgraph.trace.diff, llmtaskgraph.trace.summary,
    llmtaskgraph.views.render, llmtaskgraph.views.report,
])
def test_every_view_uses_the_one_copy(module: object) -> None:
    for name in text.__all__:
        if hasattr(module, name):
            assert getattr(module, name) is getattr(text, name), f"{module}.{name} is a copy"
    assert not hasattr(module, "_short")


def test_shorten_cuts_visibly_to_the_width() -> None:
    assert shorten("abcdef", 6) == "abcdef"
    assert shorten("abcdefg", 6) == "abcde…" and len(shorten("x" * 1000, 40)) == 40
    assert shorten("abc", 1) == "…" and shorten("abc", 0) == "…"  # never longer than asked, bar the mark


def test_clip_says_how_much_was_cut() -> None:
    assert clip("abc", 3) == "abc"
    assert clip("x" * 5000, 1000) == "x" * 1000 + "\n… [truncated: 4,000 more characters not shown]"


def test_count_text_shows_any_count_short() -> None:
    assert [count_text(n) for n in (0, -12, 10**15 - 1, 10**15, -(10**300) * 3)] == [
        "0", "-12", "999999999999999", "1.00e+15", "-3.00e+300"]
    assert count_text(1234567, grouped=True) == "1,234,567" and count_text(-1234, grouped=True) == "-1,234"
    assert count_text(10**3000, grouped=True) == "1.00e+3000"


def test_seconds_text() -> None:
    assert seconds_text(1.23456) == "1.235" and seconds_text(1.23456, 2) == "1.23"
    assert seconds_text(1e308) == "1.000e+308" and seconds_text(-2.5e12) == "-2.500e+12"
    assert [seconds_text(v) for v in (None, float("inf"), float("-inf"), float("nan"))] == ["?"] * 4


def test_terminal_safe_shows_control_characters_as_escapes() -> None:
    assert terminal_safe("plain ü 字") == "plain ü 字"
    assert terminal_safe("a\x1b[31mb\nc\ud800") == "a\\x1b[31mb\\nc\\ud800"
    assert terminal_safe("line\x07 1\nline 2", keep_newlines=True) == "line\\x07 1\nline 2"
