"""Per-task facts read from a trace (status, tokens, timings), shared by ``show`` and ``report``.

Token and retry counts are those of :mod:`llmtaskgraph.trace.usage` (the same numbers as ``graph.usage()``);
this module adds the per-task rows and the timing facts: wall time and how many tasks ran at once.
Traces may be hand-edited and :meth:`TaskGraph.load` accepts any JSON number, so a time is used only
when it is a finite float (``10**400`` is not) and a span only when both ends are there and in order.

It also holds the text helpers every view of a trace shares: :func:`shorten` (one table cell),
:func:`terminal_safe` (control characters shown as escapes) and :func:`count_text` (a huge count, readably).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..model.tasks import LLMTask, Task, TaskGraphTask
from .usage import Usage

if TYPE_CHECKING:
    from ..model.graph import TaskGraph


@dataclass
class TaskRow:
    """One task of a (possibly nested) graph, flattened for tables and timelines."""

    path: str
    """Task id, prefixed by the ids of enclosing sub-graph tasks (``outer > inner``)."""
    task: Task
    depth: int
    """How many sub-graphs enclose the task (0 at the top)."""
    usage: Usage
    """Tokens and retries of this task's LLM reply (all zero for other tasks and hand-written replies)."""

    @property
    def started_at(self) -> float | None:
        """The start time, or None when there is none or it is no finite float (see :func:`seconds`)."""
        return seconds(self.task.record.started_at)

    @property
    def finished_at(self) -> float | None:
        return seconds(self.task.record.finished_at)

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish; None unless both are usable and in order (see :attr:`bad_timing`)."""
        start, finish = self.started_at, self.finished_at
        if start is None or finish is None or finish < start or not math.isfinite(finish - start):
            return None
        return finish - start

    @property
    def bad_timing(self) -> bool:
        """The trace gives both times, but they are unusable: out of order, or beyond what a float holds."""
        rec = self.task.record
        return rec.started_at is not None and rec.finished_at is not None and self.duration is None


@dataclass
class Totals:
    """Sums over every task of a trace."""

    tasks: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)
    """Calls, tokens and retries of every reply in the trace (``graph.usage()``)."""
    started_at: float | None = None
    finished_at: float | None = None
    max_concurrency: int = 0
    """Most tasks that were running at one instant (from their start/finish times)."""

    @property
    def wall_time(self) -> float | None:
        """From the first start to the last finish; None when unknown or too long for a float."""
        if self.started_at is None or self.finished_at is None:
            return None
        wall = self.finished_at - self.started_at
        return wall if math.isfinite(wall) else None


def task_rows(graph: TaskGraph) -> list[TaskRow]:
    """Every task, each sub-graph's tasks right after the task that runs it."""
    return [_row(path, task, depth) for path, task, depth in graph.walk()]


def _row(path: str, task: Task, depth: int) -> TaskRow:
    usage, response = Usage(), task.record.response
    if isinstance(task, LLMTask) and response and response.get("backend"):  # as graph.usage() counts
        usage.add(_countable(response))
    return TaskRow(path=path, task=task, depth=depth, usage=usage)


def _countable(response: dict[str, Any]) -> dict[str, Any]:
    """``response`` with a latency no float can hold (``10**400``) left out, so counting it cannot fail."""
    latency = response.get("latency")
    if isinstance(latency, int) and not isinstance(latency, bool) and seconds(latency) is None:
        return {k: v for k, v in response.items() if k != "latency"}
    return response


def seconds(value: Any) -> float | None:
    """A time from a trace as a finite float, or None (absent, not a number, or beyond a float's range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def intervals(rows: list[TaskRow]) -> list[tuple[TaskRow, float, float]]:
    """(row, start, finish) of every task with a :attr:`~TaskRow.duration` (a task running now has none)."""
    found = []
    for row in rows:
        start, finish = row.started_at, row.finished_at
        if start is not None and finish is not None and row.duration is not None:
            found.append((row, start, finish))
    return found


def running_counts(spans: list[tuple[float, float]]) -> list[tuple[float, int]]:
    """(time, tasks running from then on) at every start or finish; a span ending exactly when another
    starts does not overlap it."""
    events = sorted([(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans], key=lambda e: (e[0], e[1]))
    steps: list[tuple[float, int]] = []
    running = 0
    for t, step in events:
        running += step
        if steps and steps[-1][0] == t:
            steps[-1] = (t, running)
        else:
            steps.append((t, running))
    return steps


def max_concurrency(spans: list[tuple[float, float]]) -> int:
    """Most spans open at one instant."""
    return max((running for _, running in running_counts(spans)), default=0)


def leaf_spans(rows: list[TaskRow]) -> list[tuple[float, float]]:
    """Start/finish of the tasks that do work: a sub-graph task is "running" while its own tasks run."""
    return [(s, f) for row, s, f in intervals(rows) if not isinstance(row.task, TaskGraphTask)]


def totals(graph: TaskGraph, rows: list[TaskRow] | None = None) -> Totals:
    """Sums over ``graph`` (``rows``: its :func:`task_rows`, if already at hand)."""
    rows = task_rows(graph) if rows is None else rows
    out = Totals(tasks=len(rows))
    for row in rows:  # every task of every sub-graph, as graph_usage() walks them
        out.by_status[row.task.status] += 1
        response = row.task.record.response
        if row.usage.calls and response:
            out.usage.add(_countable(response))
    spans = leaf_spans(rows)
    if spans:
        out.started_at = min(s for s, _ in spans)
        out.finished_at = max(f for _, f in spans)
        out.max_concurrency = max_concurrency(spans)
    return out


def utc_time(timestamp: float) -> str:
    """``2026-11-24 10:04:47 UTC``; a hand-edited timestamp out of the calendar's range gives ``?``."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))
    except (OverflowError, OSError, ValueError):
        return f"? (timestamp {count_text(timestamp) if isinstance(timestamp, int) else repr(timestamp)})"


def seconds_text(value: float | None, digits: int = 3) -> str:
    """``1.250`` for a number of seconds, ``1.000e+308`` for a hand-edited huge one, ``?`` for one that
    cannot be shown (None, inf, nan)."""
    if value is None or not math.isfinite(value):
        return "?"
    return f"{value:.{digits}f}" if abs(value) < 1e12 else f"{value:.{digits}e}"


# -- text helpers shared by every view of a trace ---------------------------------------------------
def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with ``…`` at the end, for one table cell or label.

    (For whole texts shown in a card, :func:`llmtaskgraph.views.render.clip` says how much was cut.)
    """
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def count_text(count: int) -> str:
    """A count as digits, or in scientific form when longer than 15 digits (a hand-edited ``10**3000``)."""
    digits = str(abs(count))
    if len(digits) <= 15:
        return str(count)
    sign = "-" if count < 0 else ""
    return f"{sign}{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"


def terminal_safe(text: str, keep_newlines: bool = False) -> str:
    """``text`` with control characters (and lone surrogates) shown as escapes, so a hostile trace
    can neither drive the terminal nor make printing fail."""
    if text.isprintable():
        return text
    if keep_newlines:
        return "\n".join(terminal_safe(line) for line in text.split("\n"))
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
