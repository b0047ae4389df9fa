"""The HTML report (llmtaskgraph.views.report) of any trace `TaskGraph.load` accepts: no crash, no `nan`
in the drawing, numbers that cannot be shown said to be unknown."""

from __future__ import annotations

import re

import pytest
from trace_edits import Edit, edited, reply, three_tasks, times

from llmtaskgraph import TaskGraph
from llmtaskgraph.views.report import render_report


def trace(edit: Edit) -> TaskGraph:
    """Three done tasks (`a`, the LLM task `b`, `c`) with their JSON changed by ``edit``, loaded back."""
    return edited(three_tasks(), edit)


HOSTILE = {
    "1e308 start and finish": times(a=(1e308, 1e308)),
    "infinite span": times(a=(-1e308, 1e308)),
    "tasks 2e308 apart": times(a=(-1e308, -1e308), c=(1e308, 1e308)),
    "10**300 ints": times(a=(10**300, 10**300 + 1)),
    "10**400 ints": times(a=(10**400, 10**400 + 1), c=(0, 10**400)),
    "negative duration": times(a=(10, 5)),
    "denormal times": times(a=(5e-324, 1e-323), b=(0, 5e-324), c=(0, 0)),
    "latency 10**400": reply(latency=10**400),
    "latency 1e308": reply(latency=1e308),
    "tokens 10**3000": reply(input_tokens=10**300, output_tokens=10**3000),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_the_report_of_any_loadable_trace(case: str) -> None:
    page = render_report(trace(HOSTILE[case]))
    assert page.count('<details data-path="') == 3
    numbers = re.findall(r'(?:x|y|width|height)="([^"]*)"', page[page.index('<div id="timeline">'):])
    assert all(re.fullmatch(r"-?[0-9.]+", n) for n in numbers), numbers  # no nan or inf in the drawing
    assert "nan" not in page[page.index("<h1>"):page.index('<div id="graph">')]
    assert max(len(line) for line in page.splitlines()) < 200_000


def test_times_no_scale_can_hold_are_said_not_drawn() -> None:
    page = render_report(trace(times(a=(-1e308, -1e308), c=(1e308, 1e308))))
    assert "The task times span more seconds than can be drawn; see each task below." in page
    assert '<rect class="bar"' not in page


def test_a_task_with_unusable_times_is_drawn_without_them() -> None:
    page = render_report(trace(times(a=(10, 5))))
    assert page.count('<rect class="bar"') == 2  # `b` and `c`; `a` ended before it started
    entry = page[page.index('<details data-path="a">'):page.index('<details data-path="b">')]
    assert "time ? (start and finish out of order or out of range)" in entry


def test_huge_counts_are_shown_short() -> None:
    page = render_report(trace(reply(input_tokens=10**300, output_tokens=10**3000, retries=10**20)))
    totals = page[page.index('<table class="totals">'):page.index("</table>")]
    assert '<td id="total-tokens">1.00e+300 in, 1.00e+3000 out</td>' in totals
    assert '<td id="total-retries">1.00e+20</td>' in totals
    entry = page[page.index('<details data-path="b">'):page.index('<details data-path="c">')]
    assert "1.00e+300+1.00e+3000 tokens" in entry


def test_a_title_that_is_not_utf8_is_shown_escaped() -> None:
    page = render_report(trace(times()), title="x\udcff\ud800.json")  # a file name with a byte that is not UTF-8
    page.encode("utf-8")
    assert "<title>x\\udcff\\ud800.json</title>" in page
