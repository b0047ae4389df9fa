"""Per-task facts read from a trace (status, tokens, timings), shared by ``show`` and ``report``.

Token and retry counts are those of :mod:`llmtaskgraph.trace.usage` (the same numbers as ``graph.usage()``);
this module adds the per-task rows and the timing facts: wall time and how many tasks ran at once.
Traces may be hand-edited and :meth:`TaskGraph.load` accepts any JSON number, so a time is used only
when it is a finite float (``10**400`` is not) and a span only when both ends are there and in order.
How texts and numbers are shown is :mod:`llmtaskgraph.text`'s job.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..model.tasks import LLMTask, Task, TaskGraphTask
from ..text import count_text
from .usage import Usage, graph_usage, seconds

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
        return span_seconds(self.task.record.started_at, self.task.record.finished_at)

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
        usage.add(response)
    return TaskRow(path=path, task=task, depth=depth, usage=usage)


def span_seconds(started_at: Any, finished_at: Any) -> float | None:
    """Seconds from ``started_at`` to ``finished_at`` (a task record's times); None unless both are
    usable times (see :func:`seconds`), in order, and the span itself fits a float."""
    start, finish = seconds(started_at), seconds(finished_at)
    if start is None or finish is None or finish < start or not math.isfinite(finish - start):
        return None
    return finish - start


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
    out = Totals(tasks=len(rows), usage=graph_usage(graph))
    for row in rows:
        out.by_status[row.task.status] += 1
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
