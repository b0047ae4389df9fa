"""Per-task facts of a trace (llmtaskgraph.trace.summary) and the `show` table built from them, on traces
as `TaskGraph.load` accepts them: hand-edited times and counts of any size, in any order."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from trace_edits import Edit, edited, reply, three_tasks, times

from llmtaskgraph import LLMTask, OfflineLLM, TaskGraph, TaskGraphTask
from llmtaskgraph.cli import print_table
from llmtaskgraph.text import count_text, seconds_text, shorten, terminal_safe
from llmtaskgraph.trace.summary import max_concurrency, seconds, task_rows, totals, utc_time


def edited_run(edit: Edit) -> TaskGraph:
    """``three_tasks()`` after ``edit`` changed its tasks' JSON, loaded back the way `show` loads a file."""
    return edited(three_tasks(), edit)


HOSTILE = {
    "huge float start and finish": times(a=(1e308, 1e308)),
    "zero to 1e308": times(a=(0, 1e308)),
    "-1e308 to 1e308 (an infinite span)": times(a=(-1e308, 1e308)),
    "tasks 2e308 apart": times(a=(-1e308, -1e308), c=(1e308, 1e308)),
    "10**300 ints": times(a=(10**300, 10**300 + 1)),
    "10**400 ints (beyond a float)": times(a=(10**400, 10**400 + 2), c=(0, 10**400)),
    "negative 10**400": times(a=(-(10**400), 5)),
    "start only, 10**400": times(a=(10**400, None)),
    "negative duration": times(a=(10, 5)),
    "smallest floats": times(a=(5e-324, 1e-323), c=(0, 5e-324)),
    "latency 10**400": reply(latency=10**400),
    "latency 1e308": reply(latency=1e308),
    "token counts 10**300 and 10**3000": reply(input_tokens=10**300, output_tokens=10**3000),
    "retries 10**3800": reply(retries=10**3800),
    "negative tokens": reply(input_tokens=-5),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_show_summarises_any_loadable_trace(case: str) -> None:
    graph = edited_run(HOSTILE[case])
    out = io.StringIO()
    print_table(graph, out)
    text = out.getvalue()
    assert text.splitlines()[0].split()[:3] == ["TASK", "TYPE", "STATUS"]
    assert "3 tasks (3 done); 1 LLM calls" in text
    assert "nan" not in text and "inf" not in text  # a number that cannot be shown is `?`
    assert max(len(line) for line in text.splitlines()) < 300  # a 3000-digit count does not flood the table


def test_times_beyond_a_float_or_out_of_order_are_shown_as_unknown() -> None:
    graph = edited_run(times(a=(10, 5), c=(0, 10**400)))
    rows = {row.path: row for row in task_rows(graph)}
    assert rows["a"].duration is None and rows["a"].bad_timing
    assert rows["c"].started_at == 0.0 and rows["c"].finished_at is None and rows["c"].bad_timing
    assert rows["b"].duration is not None and not rows["b"].bad_timing
    out = io.StringIO()
    print_table(graph, out)
    line_a, line_c = out.getvalue().splitlines()[1], out.getvalue().splitlines()[3]
    assert line_a.split()[-2] == "?" and line_c.split()[-2] == "?"  # a duration of -5 s, or of 10**400 s
    t0 = rows["b"].started_at
    assert t0 is not None and line_c.split()[-1] == seconds_text(0 - t0)  # its start is a time all right


def test_an_infinite_span_is_not_a_wall_time() -> None:
    sums = totals(edited_run(times(a=(-1e308, -1e308), c=(1e308, 1e308))))
    assert sums.started_at == -1e308 and sums.finished_at == 1e308 and sums.wall_time is None
    sums = totals(edited_run(times(a=(-1e308, 1e308))))  # one task whose own duration is infinite: left out
    assert sums.wall_time is not None and sums.wall_time < 1e9


def test_usage_totals_survive_a_latency_beyond_a_float() -> None:
    graph = edited_run(reply(latency=10**400, input_tokens=7, output_tokens=3))
    sums = totals(graph)
    assert (sums.usage.calls, sums.usage.input_tokens, sums.usage.output_tokens) == (1, 7, 3)
    assert sums.usage.llm_seconds == 0.0  # the unreadable latency is left out, not the reply
    assert [row.usage.input_tokens for row in task_rows(graph)] == [0, 7, 0]


def test_usage_totals_count_sub_graph_replies_as_graph_usage_does() -> None:
    inner = TaskGraph()
    inner.add_task(LLMTask("ask", "keep", id="in"))
    graph = TaskGraph()
    graph.add_task(TaskGraphTask(inner, "fmt", id="sub"))
    graph.add_task(LLMTask("ask", "keep", id="out"))
    registry: dict[str, Callable[..., Any]] = {"ask": lambda ctx: "hi", "keep": lambda ctx, text: text, "fmt": lambda ctx: None}
    graph.run(registry, llm=OfflineLLM(), progress=False)
    usage, expected = totals(graph).usage, graph.usage()
    assert (usage.calls, usage.input_tokens, usage.output_tokens) == (2, expected.input_tokens, expected.output_tokens)
    assert usage.calls == expected.calls


@pytest.mark.parametrize(("spans", "most"), [
    ([(0.0, 1.0), (0.5, 2.0), (0.7, 0.8)], 3),
    ([(0.0, 1.0), (1.0, 2.0)], 1),  # one ends exactly when the next starts: not at once
    ([(0.0, 1.0), (2.0, 3.0)], 1),
    ([], 0),
])
def test_most_tasks_at_once_comes_from_their_start_and_finish_times(spans: list[tuple[float, float]], most: int) -> None:
    assert max_concurrency(spans) == most


def test_most_tasks_at_once_of_a_trace() -> None:
    assert totals(edited_run(times(a=(0.0, 3.0), b=(1.0, 2.0), c=(2.5, 4.0)))).max_concurrency == 2
    assert totals(edited_run(times(a=(0.0, 1.0), b=(1.0, 2.0), c=(2.0, 4.0)))).max_concurrency == 1


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), (True, None), ("1", None), (3, 3.0), (1.5, 1.5), (10**300, 1e300), (10**400, None), (-(10**400), None),
    (float("inf"), None), (float("nan"), None),
])
def test_seconds_is_a_finite_float_or_none(value: Any, expected: float | None) -> None:
    assert seconds(value) == expected


def test_text_helpers() -> None:
    assert [count_text(n) for n in (0, -12, 10**15 - 1, 10**15, -(10**300) * 3)] == [
        "0", "-12", "999999999999999", "1.00e+15", "-3.00e+300"]
    assert shorten("abcdef", 6) == "abcdef" and shorten("abcdefg", 6) == "abcde…"
    assert seconds_text(1.23456) == "1.235" and seconds_text(None) == "?" and seconds_text(float("inf")) == "?"
    assert seconds_text(1e308) == "1.000e+308" and seconds_text(-2.5e12) == "-2.500e+12"
    assert terminal_safe("a\x1b[31mb\nc\ud800") == "a\\x1b[31mb\\nc\\ud800"
    assert terminal_safe("line\x07 1\nline 2", keep_newlines=True) == "line\\x07 1\nline 2"
    assert utc_time(0) == "1970-01-01 00:00:00 UTC"
    assert utc_time(1e308) == "? (timestamp 1e+308)"
    assert utc_time(10**400) == "? (timestamp 1.00e+400)"  # not 400 digits
